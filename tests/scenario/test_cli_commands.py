"""Every operator command as a new user runs it: only `$MAILGATE_CONFIG` set (no `--config`), from a directory that
is not the repository, against a running broker and tracker. Each read command of each group answers (exit 0) and
none prints a traceback (the CLI's one way of loading configuration: mailgate/ops/cli/command.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.attachments import message, zipped
from tests.support.clamd import CLAMD, EICAR, EICAR_SIGNATURE, PEER_MISSING, running_clamd
from tests.support.harness import ROOT, _wait_line

pytestmark = pytest.mark.scenario

READ_COMMANDS = [
    ["status"], ["topics"], ["broker", "status"], ["config", "check"], ["config", "history"],
    ["gateway", "list"], ["auth", "list"], ["dkim", "list"], ["events"], ["queue"], ["queue", "list"],
    ["destination", "list"], ["search", "--recipient", "nobody@example.test"], ["quarantine", "list"],
]
"""One command that only reads, of every group of the README's table (the group's other commands load their
configuration the same way)."""
EXPECTED_STATUS = {"status": 1}
"""`mailgate status` says the pipeline cannot move mail while no stage runs (exit 1), as it should here."""


def test_each_read_command_works_with_only_mailgate_config(gateway, tmp_path):
    gateway.configure({"inbound_gateways": [{"name": "in1", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                             "domain_verification": {"mode": "specified_domains",
                                                                     "domains": ["example.test"]}}]})
    gateway.start_broker()
    tracker = gateway.start("tracker", wait=False)
    _wait_line(gateway.workdir / "tracker-0.log", "consuming", tracker)
    env = {**os.environ, "MAILGATE_CONFIG": str(gateway.config_path), "PYTHONPATH": str(ROOT)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    failed = []
    for argv in READ_COMMANDS:
        done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *argv], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != EXPECTED_STATUS.get(argv[0], 0) or "Traceback" in done.stderr + done.stdout:
            failed.append(f"mailgate {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    assert failed == []


@pytest.mark.skipif(CLAMD is None, reason=PEER_MISSING)
def test_scan_prints_the_verdict_of_a_message_file_and_fails_in_one_line(tmp_path):
    """`mailgate scan FILE` with a real clamd and only `$MAILGATE_CONFIG` (no broker: scan never asks Kafka)."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "eicar.eml").write_bytes(message(("invoice.zip", zipped(("eicar.com", EICAR)))))
    (files / "clean.eml").write_bytes(message(("report.txt", b"numbers\r\n")))
    (files / "exe.eml").write_bytes(message(("invoice.pdf.exe", b"x")))
    with running_clamd(tmp_path / "clamd") as clamd:
        config = tmp_path / "mailgate.yaml"
        config.write_text(yaml.safe_dump({
            "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},  # nothing listens: scan must not need it
            "antivirus": {"scanners": [clamd.scanner]},
            "inbound_gateways": [{"name": "in1", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                  "virus": {"infected": "discard"}}]}))
        env = {**os.environ, "MAILGATE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}

        def scan(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "scan", *argv], cwd=files, env=env,
                                  capture_output=True, text=True, timeout=120)

        infected = scan("eicar.eml")
        assert infected.returncode == 1, infected.stderr
        assert infected.stdout.startswith(f"eicar.eml: infected ({EICAR_SIGNATURE})\n  scanner 127.0.0.1:{clamd.port}")
        assert "  action (gateway in1): discard" in infected.stdout
        clean = scan("clean.eml", "--json")
        assert clean.returncode == 0 and json.loads(clean.stdout)["result"] == "clean"
        exe = scan("exe.eml")
        assert exe.returncode == 1 and "rule dangerous_files: invoice.pdf.exe (double extension .pdf.exe)" in exe.stdout
        clamd.stop()
        down = scan("clean.eml")
        missing = scan("nothing.eml")
        unknown = scan("clean.eml", "--gateway", "nope")
    for done, status, text in ((down, 4, f"no clamd answered: 127.0.0.1:{clamd.port}: cannot connect"),
                               (missing, 2, "cannot read nothing.eml"), (unknown, 2, "no inbound gateway 'nope'")):
        assert done.returncode == status and done.stdout == "", done.stderr
        assert done.stderr.startswith(f"mailgate scan: {text}") and done.stderr.count("\n") == 1, done.stderr
