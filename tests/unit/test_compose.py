"""docker-compose.yml, the Dockerfile and .dockerignore agree with the code: a real compose implementation accepts
the file; every stage is a service with replicas and a /readyz healthcheck on its configured metrics port; the
broker's data volume is where Kafka writes; the example configuration's servers are all stand-in sinks; the secret
key comes from the environment; the image installs the wheel and runs as a non-root user.
(tests/scenario/test_compose_commands.py runs every `command:` as a process.)"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mailgate.core.config import parse_config
from mailgate.core.topology import STAGES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKER_CFG = parse_config(yaml.safe_load((ROOT / "examples" / "docker.yaml").read_text()))


def _compose_config(**env: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run ./scripts/install")
    base = {k: v for k, v in os.environ.items() if k != "MAILGATE_SECRET_KEY"}
    return subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_docker_compose_config_accepts_the_file_and_requires_the_secret_key():
    ok = _compose_config(MAILGATE_SECRET_KEY="k")
    assert ok.returncode == 0, ok.stderr
    missing = _compose_config()
    assert missing.returncode != 0 and "MAILGATE_SECRET_KEY" in missing.stderr


def test_every_stage_is_a_replicated_service_with_a_readyz_healthcheck_on_its_metrics_port():
    assert DOCKER_CFG.metrics.enabled and DOCKER_CFG.metrics.listen_host == "0.0.0.0"  # reachable from outside
    for stage in STAGES:
        svc = SERVICES[stage]
        assert svc["command"] == ["mailgate", stage]
        assert svc["deploy"]["replicas"] >= 1
        assert f"127.0.0.1:{DOCKER_CFG.metrics.port(stage)}/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert SERVICES["processor"]["deploy"]["replicas"] > 1 and SERVICES["egress"]["deploy"]["replicas"] > 1


def test_replicas_get_distinct_node_names_from_their_container_host_names():
    assert "node_name" not in yaml.safe_load((ROOT / "examples" / "docker.yaml").read_text())


def test_kafka_writes_to_its_volume_and_a_job_creates_the_topics():
    kafka = SERVICES["kafka"]
    data_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{data_dir}" in kafka["volumes"] and "kafka-data" in COMPOSE["volumes"]
    assert "healthcheck" in kafka
    assert SERVICES["topics"]["command"][:2] == ["mailgate", "topics"]
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert DOCKER_CFG.kafka.bootstrap_servers == ["kafka:9092"]


def test_every_server_the_example_configuration_names_is_a_stand_in_sink_service():
    sinks = {}
    for name, svc in SERVICES.items():
        if svc.get("command", [])[:2] == ["mailgate", "sink"]:
            port = int(svc["command"][-1].rsplit(":", 1)[1])
            ip = (svc.get("networks") or {}).get("mailgate", {}) if isinstance(svc.get("networks"), dict) else {}
            sinks[(name, port)] = port
            if ip:
                sinks[(ip["ipv4_address"], port)] = port
    for gw in DOCKER_CFG.inbound_gateways:
        for addr in gw.primary_hosts():
            assert (addr, gw.primary_port) in sinks, (addr, gw.primary_port)
    for gw in DOCKER_CFG.outbound_gateways:
        assert (gw.address, gw.port) in sinks, (gw.address, gw.port)


def test_admin_page_and_secret_key_from_the_environment():
    assert SERVICES["admin"]["command"] == ["mailgate", "admin"]
    assert f":{DOCKER_CFG.admin.listen_port}" in SERVICES["admin"]["ports"][0]
    for name, svc in SERVICES.items():
        if name != "kafka":
            assert svc["environment"]["MAILGATE_SECRET_KEY"].startswith("${MAILGATE_SECRET_KEY")
            assert "./examples/docker.yaml:/etc/mailgate/mailgate.yaml:ro" in svc["volumes"]


def test_dockerfile_installs_the_wheel_as_a_non_root_user_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "pip wheel" in text and "pip install --no-cache-dir -c /tmp/dist/constraints.txt /tmp/dist/mailgate-*.whl" in text
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "MAILGATE_CACHE_DIR=/var/lib/mailgate" in text and "VOLUME [\"/var/lib/mailgate\"]" in text
    exposed = {int(p) for line in text.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]}
    cfg = parse_config({})
    assert {cfg.ingress.listen_port, cfg.admin.listen_port, *(cfg.metrics.port(s) for s in STAGES)} <= exposed
    assert "HEALTHCHECK" in text and "/readyz" in text


def test_dockerignore_keeps_caches_and_history_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".mailgate", "tests", "build", "*.egg-info"} <= ignored
    assert not {"pyproject.toml", "README.md", "mailgate", "schemas"} & ignored  # the wheel needs them
