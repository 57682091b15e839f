"""The wheel alone runs mailgate: built from the tree, installed into a fresh virtual environment outside it, and a
message passes through the installed package (ingress → Kafka → processor → egress → a stand-in primary).

The venv sees the machine's site-packages for the third-party dependencies (this CI has no index to install them
from quickly; tests/unit/test_dependencies.py checks they are all declared); mailgate itself comes only from the
wheel, which the test asserts. The broker keeps its data in the per-user cache ($MAILGATE_CACHE_DIR here) and
uses the already-fetched jars through `local_broker.libs`; nothing is written to the working directory.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.harness import free_port

pytestmark = pytest.mark.scenario
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv outside the tree with only the built wheel of mailgate installed in it."""
    base = tmp_path_factory.mktemp("wheel")
    dist, src = base / "dist", base / "src"
    # Built from a copy, as from a fresh checkout: no build/ or egg-info left over from earlier builds, none left here.
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".mailgate", "build", "dist", "*.egg-info",
                                                             "__pycache__", "tests", "docs", "bench"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)],
                   check=True, cwd=base, timeout=600)
    wheel = next(dist.glob("mailgate-*.whl"))
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True, timeout=120)
    subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, cwd=base, timeout=300)
    return env_dir


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILGATE_CONFIG")}
    return {**env, **extra}


def test_installed_package_is_the_wheel_with_its_data(venv, tmp_path):
    code = ("import mailgate, schemas, ingress, processors.spam, egress, mailgate.ops.admin.server, "
            "mailgate.ops.kafka.local_broker as b, importlib.resources as r;"
            "print(mailgate.__path__[0]); print(b.POM.is_file());"
            "print(r.files('mailgate.ops.admin').joinpath('static/index.html').is_file());"
            "print(len(list(r.files('schemas').glob('*.avsc'))) if hasattr(r.files('schemas'), 'glob') else "
            "len([p for p in r.files('schemas').iterdir() if p.name.endswith('.avsc')]))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    where, pom, static, schemas = out.stdout.split()
    assert where.startswith(str(venv)), where
    assert pom == "True" and static == "True" and int(schemas) == len(list((ROOT / "schemas").glob("*.avsc")))
    version = subprocess.run([str(venv / "bin" / "mailgate"), "--version"], capture_output=True, text=True,
                             cwd=tmp_path, env=_clean_env(), timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "mailgate 0.1.0"


def _wait_ready(urls: list[str], procs: list[subprocess.Popen], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a process exited early"
        try:
            if all(urllib.request.urlopen(u, timeout=2).status == 200 for u in urls):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready within {timeout_s}s: {urls}")


def test_message_passes_through_the_installed_package(venv, tmp_path, kafka_jars):
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    smtp, sink_port = free_port(), free_port()
    metrics = {"ingress_port": free_port(), "processor_port": free_port(), "egress_port": free_port()}
    config = {"node_name": "wheel", "kafka": {"bootstrap_servers": [f"127.0.0.1:{(kp := free_port())}"],
                                              "partitions": 1, "compression": "none"},
              "local_broker": {"libs": str(kafka_jars), "port": kp, "controller_port": free_port()},
              "ingress": {"listen_port": smtp, "hostname": "gw.test"}, "metrics": metrics,
              "delivery": {"helo_name": "gw.test"},
              "inbound_gateways": [{"name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                    "primary_port": sink_port, "domain_verification": {"domains": ["example.test"]}}]}
    (work / "mailgate.yaml").write_text(yaml.safe_dump(config))
    env = _clean_env(MAILGATE_CACHE_DIR=str(cache), MAILGATE_CONFIG=str(work / "mailgate.yaml"))
    mailgate = str(venv / "bin" / "mailgate")
    sink_out = tmp_path / "sink.out"
    with open(sink_out, "wb") as so, open(tmp_path / "up.log", "wb") as log:
        sink = subprocess.Popen([mailgate, "sink", "--listen", f"127.0.0.1:{sink_port}"], cwd=work, env=env,
                                stdout=so, stderr=subprocess.STDOUT, start_new_session=True)
        up = subprocess.Popen([mailgate, "up"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        _wait_ready([f"http://127.0.0.1:{p}/readyz" for p in metrics.values()], [sink, up])
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as s:
            s.sendmail("alice@sender.test", ["bob@example.test"], b"Subject: from the wheel\r\n\r\nHello.\r\n")
        deadline = time.monotonic() + 60
        while "accepted" not in sink_out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        line = sink_out.read_text()
        assert "from=<alice@sender.test> to=<bob@example.test>" in line, line
        mid = line.split("accepted ", 1)[1].split()[0]
        deadline = time.monotonic() + 60  # `mailgate up`'s tracker trails the log by its lag
        while True:
            trace = subprocess.run([mailgate, "trace", mid, "--json"], cwd=work, env=env, capture_output=True,
                                   text=True, timeout=60)
            types = [json.loads(x)["type"] for x in trace.stdout.splitlines()] if trace.returncode == 0 else []
            if "MessageDelivered" in types or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "MessageDelivered" in types, trace.stdout + trace.stderr
    finally:
        for p in (up, sink):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in (up, sink):
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
    assert (cache / "broker" / "kafka.log").is_file()  # the broker's data went to the per-user cache ...
    assert sorted(p.name for p in work.iterdir()) == ["mailgate.yaml"]  # ... and nothing to the working directory
