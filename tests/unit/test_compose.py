"""docker-compose.yml parses and runs every stage as its own service, each scalable."""
from __future__ import annotations

from pathlib import Path

import yaml

from mailgate.core.topology import STAGES


def test_compose_names_every_stage_with_replicas():
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "kafka" in services
    for stage in STAGES:
        assert stage in services, stage
        assert services[stage]["command"][:2] == ["mailgate", stage]
        assert services[stage]["deploy"]["replicas"] >= 1
