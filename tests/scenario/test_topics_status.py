"""`mailgate topics` reports drift from the declared topics (partitions, retention, compaction) and `--fix` repairs
what Kafka allows; `mailgate status` shows the broker, the topics and each stage group's members and lag."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import yaml
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from mailgate.ops.kafka.admin import admin_client
from tests.support.harness import ROOT

pytestmark = pytest.mark.scenario


def mailgate(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_topics_reports_drift_and_fix_repairs_it(gateway, tmp_path):
    cfg = gateway.configure({})
    gateway.start_broker()

    async def uncompact() -> None:
        async with admin_client(cfg) as admin:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "mail.delivered",
                                                      configs={"cleanup.policy": "delete"})])
    asyncio.run(uncompact())
    changed = yaml.safe_load(gateway.config_path.read_text())
    changed["kafka"].update(partitions=3, events_retention_s=7200)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))

    before = mailgate("topics", "--json", "--config", str(path))
    assert before.returncode == 1, before.stderr
    drift = {(d["topic"], d["setting"]): d for d in json.loads(before.stdout)["drift"]}
    assert drift[("mail.received", "partitions")]["actual"] == "2" and drift[("mail.received", "partitions")]["fixable"]
    assert drift[("mail.events", "retention.ms")]["declared"] == "7200000"
    assert drift[("mail.delivered", "cleanup.policy")]["actual"] == "delete"

    fixed = mailgate("topics", "--fix", "--config", str(path))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "mail.received: partitions is 2, declared 3 (fixed)" in fixed.stdout
    after = mailgate("topics", "--json", "--config", str(path))
    assert after.returncode == 0 and json.loads(after.stdout) == {"created": [], "drift": [], "in_sync": True}

    fewer = mailgate("topics", "--json", "--config", str(gateway.config_path))  # 2 declared, 3 exist now
    assert fewer.returncode == 1
    left = [d for d in json.loads(fewer.stdout)["drift"] if d["setting"] == "partitions"]
    assert left and not any(d["fixable"] for d in left)


def test_status_shows_each_stage_group_with_members_and_lag(gateway, primary):
    gateway.configure({"inbound_gateways": [{"name": "p", "mode": "domain_forward",
                                             "primary_addresses": ["127.0.0.1"], "primary_port": primary.port,
                                             "domain_verification": {"domains": ["example.test"]}}]})
    gateway.start_broker()
    idle = mailgate("status", "--json", "--config", str(gateway.config_path))
    assert idle.returncode == 1 and json.loads(idle.stdout)["stages"]["egress"]["members"] == []
    gateway.start_all()
    deadline = time.monotonic() + 90
    while True:
        done = mailgate("status", "--json", "--config", str(gateway.config_path))
        st = json.loads(done.stdout)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stdout
    assert st["kafka"]["reachable"] and st["topics"]["missing"] == []
    for stage in ("processor", "egress"):
        assert st["stages"][stage]["state"] == "Stable" and len(st["stages"][stage]["members"]) == 1
        assert st["stages"][stage]["lag"] == 0
    text = mailgate("status", "--config", str(gateway.config_path)).stdout
    assert "egress: group mailgate-egress Stable, 1 member(s)" in text
