"""Every `command:` of docker-compose.yml runs as a local process with the compose file's environment, against a
local Kafka broker, and together they pass a message from SMTP to the stand-in primary (no Docker engine here).

Translation from the compose network to one host: the compose file's resolved form (`docker-compose config`) gives
each service's command, environment and replicas; `mailgate` runs this tree's code; the mounted configuration
(examples/docker.yaml) is rewritten with service names and fixed addresses mapped to 127.0.0.1 and free ports,
one file per replica (node name = `<service>-<n>`, as each container's host name would be); each service's
healthcheck command runs with its port mapped the same way.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mailgate.core.config import parse_config
from mailgate.core.secrets import new_key
from mailgate.ops.kafka import local_broker as broker
from tests.support.harness import free_port

pytestmark = pytest.mark.scenario
ROOT = Path(__file__).resolve().parents[2]
STAGE_PORT_KEY = {"ingress": "ingress_port", "processor": "processor_port", "egress": "egress_port"}


def resolved_compose(env: dict) -> dict:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run ./scripts/install")
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


class Host:
    """The compose network folded onto 127.0.0.1: compose ports → free local ports."""

    def __init__(self, tmp: Path, jars: Path) -> None:
        self.tmp, self.jars = tmp, jars
        self.ports: dict[int, int] = {}
        self.kafka_port, self.controller_port = free_port(), free_port()

    def port(self, compose_port: int) -> int:
        return self.ports.setdefault(compose_port, free_port())

    def config(self, name: str, stage: str | None) -> Path:
        data = yaml.safe_load((ROOT / "examples" / "docker.yaml").read_text())
        data["node_name"] = name
        data["kafka"].update(bootstrap_servers=[f"127.0.0.1:{self.kafka_port}"], compression="none")
        data["local_broker"] = {"home": str(self.tmp / "broker"), "libs": str(self.jars), "port": self.kafka_port,
                                "controller_port": self.controller_port}
        data["ingress"].update(listen_host="127.0.0.1", listen_port=self.port(data["ingress"]["listen_port"]))
        metrics = data["metrics"]
        for stage_name, key in STAGE_PORT_KEY.items():  # replicas share a host: only this one's stage gets a port
            metrics[key] = self.port(metrics[key]) if stage_name == stage and name.endswith("-0") else 0
        metrics["listen_host"] = "127.0.0.1"
        data["admin"].update(listen_host="127.0.0.1", listen_port=self.port(data["admin"]["listen_port"]))
        for gw in data["inbound_gateways"]:
            gw.update(primary_addresses=["127.0.0.1"], primary_port=self.port(gw["primary_port"]))
        for gw in data["outbound_gateways"]:
            gw.update(address="127.0.0.1", port=self.port(gw["port"]))
        parse_config(data)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def args(self, argv: list[str]) -> list[str]:
        """`mailgate ...` as this tree's code; `0.0.0.0:PORT` and `127.0.0.1:PORT` mapped to local ports."""
        out = [sys.executable, "-m", "mailgate.ops.cli"] + argv[1:] if argv[0] == "mailgate" else list(argv)
        if out[0] == "python":
            out[0] = sys.executable
        return [re.sub(r"(?:0\.0\.0\.0|127\.0\.0\.1):(\d+)",
                       lambda m: f"127.0.0.1:{self.port(int(m.group(1)))}", a) for a in out]


def _env(service: dict, config: Path) -> dict:
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    assert env.get("MAILGATE_CONFIG") == "/etc/mailgate/mailgate.yaml"
    env["MAILGATE_CONFIG"] = str(config)  # the volume ./examples/docker.yaml:/etc/mailgate/mailgate.yaml, translated
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**keep, **env, "PYTHONPATH": str(ROOT)}


def _wait(check, what: str, procs: list, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"exited early: {dead}"
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s}s")


def test_every_compose_command_runs_locally_and_mail_flows(tmp_path, kafka_jars):
    key = new_key()
    compose = resolved_compose({**os.environ, "MAILGATE_SECRET_KEY": key})
    services = compose["services"]
    host = Host(tmp_path, Path(kafka_jars))
    broker.start(parse_config(yaml.safe_load(host.config("broker", None).read_text())))
    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}
    try:
        topics = services["topics"]
        done = subprocess.run(host.args(topics["command"]), env=_env(topics, host.config("topics-0", None)),
                              cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _env(topics, tmp_path)["MAILGATE_SECRET_KEY"] == key
        for name, svc in services.items():
            if name in ("kafka", "topics"):
                continue
            stage = name if name in STAGE_PORT_KEY else None
            for i in range(svc.get("deploy", {}).get("replicas", 1)):
                logs[f"{name}-{i}"] = log = tmp_path / f"{name}-{i}.log"
                with open(log, "wb") as f:
                    procs.append(subprocess.Popen(host.args(svc["command"]), cwd=tmp_path, stdout=f,
                                                  stderr=subprocess.STDOUT, start_new_session=True,
                                                  env=_env(svc, host.config(f"{name}-{i}", stage))))
        for name, svc in services.items():
            if "healthcheck" in svc and name != "kafka":
                check = host.args(svc["healthcheck"]["test"][1:])
                _wait(lambda: subprocess.run(check, timeout=10).returncode == 0, f"{name} healthcheck", procs)
        primary = services["primary-sink"]["command"][-1]
        with smtplib.SMTP("127.0.0.1", host.port(2525), timeout=30) as s:
            s.sendmail("alice@sender.test", ["bob@example.test"], b"Subject: compose\r\n\r\nHello.\r\n")
        _wait(lambda: "accepted" in logs["primary-sink-0"].read_text(), f"a message at {primary}", procs, 60)
        assert "to=<bob@example.test>" in logs["primary-sink-0"].read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        broker.stop(parse_config(yaml.safe_load((tmp_path / "broker.yaml").read_text())))
    assert len(procs) == sum(s.get("deploy", {}).get("replicas", 1) for n, s in services.items()
                             if n not in ("kafka", "topics"))
