"""Every operator command as a new user runs it: only `$MAILGATE_CONFIG` set (no `--config`), from a directory that
is not the repository, against a running broker and tracker. Each read command of each group answers (exit 0) and
none prints a traceback (the CLI's one way of loading configuration: mailgate/ops/cli/command.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
