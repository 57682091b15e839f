"""The README's first run, as a new user types it: `./scripts/run-gateway`, then the swaks line, then
`mailgate trace <id>`. The message must be delivered to the stand-in primary within a second of its 250, and the
trace must come from the tracking store that `mailgate up` keeps (its tracker), not from a scan of mail.events.

The command lines are read from README.md, so the README cannot drift from what is tested. The run uses the example
configuration's fixed ports (2525-2527, 8025, 9092-9093, 9101-9104). The user's Python is a fresh virtual environment
(seeing the machine's site-packages for the dependencies), first on PATH, so run-gateway's install step really runs
(`pip install -e .` into it, the Debian package check, the jars) without touching the machine's own installation;
the per-user cache is a temporary directory holding the already-fetched jars (so mvn has nothing to do).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.scenario, pytest.mark.serial]  # a timed claim, on the example's fixed ports

ROOT = Path(__file__).resolve().parents[2]
PORTS = (2525, 2526, 2527, 8025, 9092, 9093, 9101, 9102, 9103, 9104)


def readme_commands() -> dict[str, str]:
    """The run, swaks and trace command lines of the README's set-up section, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    setup = text[text.index("## Set-up"):text.index("## Commands")]
    indented = [line.strip() for line in setup.splitlines() if line.startswith("    ") and line.strip()]
    return {"run": next(c for c in indented if "run-gateway" in c),
            "swaks": next(c for c in indented if c.startswith("swaks ")),
            "trace": next(c for c in indented if c.startswith("mailgate trace "))}


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(pattern, path.read_text(errors="replace"))
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} after {timeout_s}s (exit {proc.poll()}):\n"
                         f"{path.read_text(errors='replace')[-4000:]}")


def _trace_from_store(argv: list[str], env: dict, timeout_s: float = 60) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the README's trace until the store holds the delivery (the tracker trails the log by its lag); it must
    read the tracking store every time, never fall back to scanning mail.events."""
    deadline = time.monotonic() + timeout_s
    while True:
        trace = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert "scanning mail.events instead" not in trace.stderr, trace.stderr
        events = {e["type"]: e for e in map(json.loads, trace.stdout.splitlines())} if trace.returncode == 0 else {}
        if "MessageDelivered" in events or time.monotonic() > deadline:
            assert trace.returncode == 0, trace.stdout + trace.stderr
            return trace, events
        time.sleep(0.2)


def _log_in(url: str, user: str, password: str) -> None:
    """The README's admin login: the printed password opens a session; a wrong one does not."""
    import http.cookiejar
    import urllib.error
    import urllib.request
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(pw: str) -> int:
        req = urllib.request.Request(url + "api/login", data=json.dumps({"username": user, "password": pw}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
    assert post(password + "x") == 401
    assert post(password) == 200
    with opener.open(url + "api/session", timeout=30) as resp:
        assert json.load(resp)["username"] == user


@pytest.fixture
def user_env(tmp_path, kafka_jars):
    """A user's shell on a set-up machine: its python3 a fresh venv, its cache a temporary directory."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kafka-libs").symlink_to(Path(kafka_jars).resolve())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILGATE_CONFIG", "MAILGATE_SKIP_INSTALL")}
    return {**env, "MAILGATE_CACHE_DIR": str(cache), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}


def test_readme_first_run_delivers_swaks_message_to_the_stand_in_primary_within_a_second(tmp_path, user_env):
    busy = [p for p in PORTS if _busy(p)]
    assert not busy, f"the example configuration's ports {busy} are in use on this host"
    cmds = readme_commands()
    out = tmp_path / "run-gateway.out"
    with open(out, "wb") as f:
        run = subprocess.Popen(["bash", "-c", cmds["run"]], cwd=ROOT, env=user_env, stdout=f,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(out, r"run-gateway: ready", run, timeout_s=420)
        assert "kafka jars: " in out.read_text()  # the install step ran
        door = _wait_for(out, r"run-gateway: admin page (http://127\.0\.0\.1:8025/) user (\S+) password (\S+) "
                              r"\(made for this run\)", run, timeout_s=60)
        _log_in(door.group(1), door.group(2), door.group(3))
        swaks = subprocess.run(shlex.split(cmds["swaks"]), cwd=ROOT, env=user_env, capture_output=True, text=True,
                               timeout=60)
        m = re.search(r"<[-~] +250 2\.0\.0 Ok: queued as (\S+)", swaks.stdout)
        assert m, swaks.stdout + swaks.stderr
        mid = m.group(1)
        _wait_for(out, rf"sink 127\.0\.0\.1:2526: accepted {mid} ", run, timeout_s=30)
        trace, events = _trace_from_store(shlex.split(cmds["trace"].replace("<id>", mid)) + ["--json"], user_env)
        assert {"MessageReceived", "MessageRouted", "MessageDelivered"} <= set(events), trace.stdout
        took_ms = events["MessageDelivered"]["occurred_at"] - events["MessageReceived"]["occurred_at"]
        print(f"first run: {mid} delivered {took_ms} ms after it was received\n{trace.stdout}")
        assert took_ms < 1000
    finally:
        os.killpg(run.pid, signal.SIGTERM)  # Ctrl-C
        try:
            run.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    # "Ctrl-C stops everything": once run-gateway has exited, nothing it started holds a port
    assert not [p for p in PORTS if _busy(p)], "run-gateway exited before what it started had stopped"


def test_run_gateway_refuses_to_start_when_a_port_it_needs_is_held_and_names_it(tmp_path):
    """A stranger on a stage's metrics port would answer /readyz and make run-gateway say "ready" too early; it
    must refuse to start instead, naming the port and what it is for, before starting anything."""
    busy = [p for p in PORTS if _busy(p)]
    assert not busy, f"the example configuration's ports {busy} are in use on this host"
    env = {**os.environ, "MAILGATE_SKIP_INSTALL": "1", "MAILGATE_CACHE_DIR": str(tmp_path)}
    with socket.socket() as stranger:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last run's connections in TIME_WAIT
        stranger.bind(("127.0.0.1", 9103))
        stranger.listen()
        run = subprocess.run(["./scripts/run-gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "127.0.0.1:9103 (the egress metrics port (metrics.egress_port)) is in use by another process" in run.stderr
    assert not [p for p in PORTS if p != 9103 and _busy(p)], "run-gateway started something before refusing"
