"""Every operator-facing failure of the `mailgate` command is one clear line on stderr, the documented exit status
(README: 0 ok, 1 failure, 2 usage, 3 configuration, 4 Kafka unreachable), and no traceback unless --debug."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def mailgate(*argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "MAILGATE_CONFIG"}
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *argv], capture_output=True, text=True,
                          timeout=60, env={**base, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT)


def one_line_failure(done: subprocess.CompletedProcess, status: int) -> str:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def unreachable(tmp_path) -> Path:
    """A valid configuration whose Kafka port has nothing listening (and no tracking store, whatever this machine's
    per-user cache holds, so the commands that read one go to Kafka)."""
    path = tmp_path / "down.yaml"
    path.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": [f"127.0.0.1:{free_port()}"]},
                                    "tracking": {"sqlite_path": str(tmp_path / "no-store.sqlite3")}}))
    return path


def test_version_prints_the_installed_version():
    done = mailgate("--version")
    assert done.returncode == 0 and done.stdout.startswith("mailgate ")


@pytest.mark.parametrize("argv", [["nosuchcommand"], ["topics", "--bogus"], ["--log-level", "LOUD", "topics"]])
def test_bad_arguments_exit_2_with_one_line(argv):
    line = one_line_failure(mailgate(*argv), 2)
    assert line.startswith("mailgate") and "error:" in line


def test_missing_config_file_names_the_file_and_how_to_give_one(tmp_path):
    line = one_line_failure(mailgate("topics", "--config", str(tmp_path / "nope.yaml")), 3)
    assert str(tmp_path / "nope.yaml") in line and "No such file" in line and "MAILGATE_CONFIG" in line


def test_config_comes_from_mailgate_config_then_etc(tmp_path):
    line = one_line_failure(mailgate("topics", env={"MAILGATE_CONFIG": str(tmp_path / "env.yaml")}), 3)
    assert str(tmp_path / "env.yaml") in line
    if not Path("/etc/mailgate/mailgate.yaml").exists():
        line = one_line_failure(mailgate("topics", cwd=tmp_path), 3)
        assert "/etc/mailgate/mailgate.yaml" in line  # never a path relative to the current directory


def test_invalid_config_is_one_line_with_file_and_key_paths(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ingress:\n  listen_prot: 25\noutbound_gateways: [{name: a, address: x, port: 99999}]\n")
    line = one_line_failure(mailgate("status", "--config", str(path)), 3)
    assert line.startswith(f"mailgate status: {path}: invalid configuration: ")
    assert "ingress.listen_prot: unknown key" in line and "outbound_gateways.0.port" in line


@pytest.mark.parametrize("argv", [["status"], ["topics"], ["quarantine", "list"]])
def test_unreachable_broker_exits_4_naming_the_servers_and_the_file(unreachable, argv):
    line = one_line_failure(mailgate(*argv, "--config", str(unreachable)), 4)
    servers = yaml.safe_load(unreachable.read_text())["kafka"]["bootstrap_servers"][0]
    assert f"cannot reach Kafka at {servers} (kafka.bootstrap_servers in {unreachable})" in line


def test_debug_shows_the_traceback(unreachable):
    done = mailgate("--debug", "trace", "01ABC", "--config", str(unreachable))
    assert done.returncode == 4 and "Traceback" in done.stderr


def test_bad_time_is_a_usage_error(unreachable):
    line = one_line_failure(mailgate("events", "--since", "yesterday-ish", "--config", str(unreachable)), 2)
    assert "yesterday-ish" in line


def test_unknown_gateway_name_is_a_usage_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    line = one_line_failure(mailgate("gateway", "verify", "nosuch", "--config", str(path)), 2)
    assert "no outbound gateway named 'nosuch'" in line


def test_sink_port_in_use_and_bad_listen():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_line_failure(mailgate("sink", "--listen", f"127.0.0.1:{port}"), 1)
        assert "in use" in line
    assert "HOST:PORT" in one_line_failure(mailgate("sink", "--listen", "nonsense"), 2)


def test_config_check_reports_ok_or_each_problem(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text((ROOT / "examples" / "mailgate.yaml").read_text())
    done = mailgate("config", "check", str(good))
    assert done.returncode == 0 and done.stdout.strip() == f"{good}: ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingress: {listen_prot: 1, tls: {cert_file: /nonexistent.pem, key_file: /nonexistent.key}}\n")
    done = mailgate("config", "check", str(bad), "--json")
    assert done.returncode == 3 and '"ok": false' in done.stdout and "ingress.listen_prot: unknown key" in done.stdout
    missing_secret = tmp_path / "secret.yaml"
    missing_secret.write_text("outbound_gateways: [{name: a, address: x, auth_username: u, "
                              "auth_password: {env: MG_TEST_UNSET_VAR}}]\n")
    done = mailgate("config", "check", str(missing_secret))
    assert done.returncode == 3 and "environment variable MG_TEST_UNSET_VAR is not set" in done.stdout


def test_every_subcommand_has_help_that_exits_0(capsys):
    """`mailgate COMMAND --help` for every command in the parser: the parser of each group builds and says what the
    command does (a group whose module fails to import would fail here, before an operator finds it)."""
    from mailgate.ops.cli.main import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert len(commands) >= 20
    for name in commands:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0, name
        assert "usage: mailgate " + name in capsys.readouterr().out


def test_a_queue_command_an_egress_replica_did_not_acknowledge_exits_5_naming_it(capsys):
    """Exit status 5 (exits.NOT_ALL_APPLIED), not 3, which is a configuration error."""
    from mailgate.ops.cli import exits
    from mailgate.ops.queue.cli import _report
    from mailgate.ops.queue.commands import Applied
    assert _report("hold: 1 message(s)", Applied("c1", 1, {"egress-a"}, {"egress-b"}, 60.0)) == exits.NOT_ALL_APPLIED == 5
    assert "NOT acknowledged by: egress-b" in capsys.readouterr().out
    assert _report("hold: 1 message(s)", Applied("c2", 1, {"egress-a"}, set(), 0.1)) == exits.OK
