"""A record of a newer release reaching an older one (issue 35): dead-lettered naming its fingerprint, then
re-driven after the upgrade and delivered once (docs/operations.md, "Upgrading").

The "older release" is this checkout. The "newer release" is a copy of its stage code whose MessageReceived has one
more field (added with a default, as the house rule says), so its writer schema has a fingerprint this checkout has
never kept. A MessageReceived written with it lands in mail.received; this checkout's processor cannot read it and
dead-letters it (mail.dlq names the fingerprint and the record's place). The processor is then upgraded to the
newer release (readers first), and the operator re-drives the record by its original offsets with
`mailgate replay --topic mail.received --from-offset ... --message-id ...`: it is delivered, once.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailgate.core import topics
from mailgate.core.ids import new_message_id
from schemas.codec import SCHEMA_DIR, _to_avro, header_of
from tests.scenario.test_rolling_upgrade import dead_letters, received, subjects, write
from tests.scenario.test_walking_skeleton import inbound_config
from tests.support.harness import ROOT
from tests.support.schema_samples import write_with

pytestmark = pytest.mark.scenario

STAGE_CODE = ("mailgate", "ingress", "processors", "egress", "schemas")


def newer_release(into: Path) -> dict:
    """A tree of the stage code whose MessageReceived has a field this checkout does not know; its schema."""
    for name in STAGE_CODE:
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    schema = json.loads((SCHEMA_DIR / "MessageReceived.avsc").read_text())
    schema["fields"].append({"name": "added_by_a_newer_release", "type": "string", "default": "",
                             "doc": "A field a later release added (with a default, as schemas evolve)."})
    (into / "schemas" / "MessageReceived.avsc").write_text(json.dumps(schema, indent=2))
    return schema


def newer_cli(gateway, release: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                          cwd=str(release), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_for(what, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s}s")


def test_a_dead_lettered_record_of_a_newer_release_is_redriven_after_the_upgrade_and_delivered_once(
        gateway, primary, tmp_path):
    release = tmp_path / "newer-release"
    schema = newer_release(release)
    fingerprint = header_of(schema)[2:][::-1].hex()
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()

    mid = new_message_id()
    record = dict(_to_avro(received(mid, "written by a newer release", int(time.time() * 1000))),
                  added_by_a_newer_release="new")
    asyncio.run(write(gateway.cfg, [(topics.RECEIVED, mid, write_with(schema, record))]))

    dead = wait_for(lambda: dead_letters(gateway.cfg))
    assert len(dead) == 1 and fingerprint in dead[0].reason, dead
    assert dead[0].source_topic == topics.RECEIVED
    assert primary.messages == []
    assert f"dead-lettered {topics.RECEIVED}[" in gateway.logs()
    assert f"unknown schema fingerprint {fingerprint}" in gateway.logs()

    for p in gateway.procs.pop("processor"):  # the upgrade: readers first, the processor reads mail.received
        gateway.kill(p, signal.SIGTERM)
    gateway.start("processor", release=release)
    out = newer_cli(gateway, release, "replay", "--topic", dead[0].source_topic, "--from-offset",
                    str(dead[0].offset), "--message-id", mid, "--reason", "re-drive after the upgrade")
    assert "replayed 1 record(s)" in out, out

    gateway.wait_events(mid, "MessageDelivered", timeout_s=120)
    deadline = time.monotonic() + 5  # a second delivery would land within this
    while time.monotonic() < deadline and subjects(primary) == ["written by a newer release"]:
        time.sleep(0.5)
    assert subjects(primary) == ["written by a newer release"]
    assert len(dead_letters(gateway.cfg)) == 1  # the replayed copy was read, not dead-lettered again

