"""One Kafka broker per test process (each pytest-xdist worker), lent to one test's Gateway at a time.

A broker start costs a JVM start (2.5-5 s of CPU) and a new broker runs the first minutes of its work in
interpreted code; the suite started about 130 of them. A Gateway whose test asks nothing special of its broker
(no `local_broker` or `kafka.bootstrap_servers`/`security` settings, records within the shared broker's limit)
borrows this broker instead. Before the first start of each borrower the broker is made as good as new:

- every topic but Kafka's own (`__*`) is deleted and every consumer group removed, so the test's stages see empty
  topics, no committed offsets and no group members; the test then creates its topics from its own configuration;
- when that cannot be done cleanly (a group still has members: a stage killed with SIGKILL stays a member until
  its session times out, and would stall the next test's rebalance), the broker is replaced by a new one with a new
  data dir: what a test paid before.

Deleted topics' files stay on disk (`file.delete.delay.ms` is a day) and a replaced broker's data dir is kept, so the
session-end secret sweep still reads every segment any test wrote. Only the first Gateway of a lease borrows: a test
that makes a second Gateway (another cluster, another release) gets its own broker, as every Gateway did before.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest

from mailgate.core import kafka, topics
from mailgate.core.config import Config, parse_config
from mailgate.ops.kafka import local_broker as broker

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest message a borrowing test's ingress may accept (the broker's `message.max.bytes` follows)."""

PROPERTIES = {"file.delete.delay.ms": str(24 * 3600 * 1000)}
"""Added to the local broker's properties: deleted topics' segments stay for the secret sweep."""


class SharedBroker:
    """The broker one test process lends to its tests' Gateways, one at a time."""

    def __init__(self, home: Path, libs: Path, port: int, controller_port: int) -> None:
        self.home, self.libs, self.port, self.controller_port = home, libs, port, controller_port
        self.leased = False
        self.lends = 0
        self.generation = 0
        self.cfg = self._config()

    def _config(self) -> Config:
        return parse_config({
            "node_name": "shared-broker",
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{self.port}"]},
            "ingress": {"max_message_bytes": MAX_MESSAGE_BYTES},
            "local_broker": {"home": str(self.home / f"broker-{self.generation}"), "libs": str(self.libs),
                             "port": self.port, "controller_port": self.controller_port},
        })

    def can_lend(self, data: dict, cfg: Config) -> bool:
        """True if a test configured with `data` (parsed: `cfg`) can borrow this broker now."""
        k = data.get("kafka", {})
        return (not self.leased and "local_broker" not in data and "bootstrap_servers" not in k
                and "security" not in k and topics.max_record_bytes(cfg) <= topics.max_record_bytes(self.cfg))

    def lend(self) -> None:
        self.leased = True

    def settings(self) -> dict:
        """The settings that point a borrower's configuration at this broker."""
        return {"kafka": {"bootstrap_servers": [f"127.0.0.1:{self.port}"]},
                "local_broker": {"home": str(self.cfg.local_broker.home), "libs": str(self.libs),
                                 "port": self.port, "controller_port": self.controller_port}}

    def give_back(self) -> None:
        self.leased = False

    def prepare(self) -> Config:
        """Make the broker as good as new (running, no topics, no groups) and return the configuration a borrower
        must use (its `local_broker.home` changes when the broker was replaced)."""
        self.lends += 1
        if broker.status(self.cfg).running and asyncio.run(self._empty()):
            return self.cfg
        self._replace()
        return self.cfg

    def start(self) -> None:
        _start(self.cfg)

    def _replace(self) -> None:
        broker.stop(self.cfg)
        self.generation += 1
        self.cfg = self._config()
        shutil.rmtree(self.cfg.local_broker.home, ignore_errors=True)
        _start(self.cfg)

    async def _empty(self) -> bool:
        admin = AIOKafkaAdminClient(**kafka._common(self.cfg, "test-shared-broker"), request_timeout_ms=10000)
        try:
            await admin.start()
            groups = [g[0] for g in await admin.list_consumer_groups()]
            if groups:
                # aiokafka's admin has no delete call (and cannot decode faust's DescribeGroups answer); a one-node
                # broker is every group's coordinator. A group with members answers NON_EMPTY_GROUP (68).
                answer = await admin._send_request(DeleteGroupsRequest(groups))
                failed = [f"{r['group_id']} (error {r['error_code']})" for r in answer.to_object()["results"]
                          if r["error_code"]]
                if failed:
                    return self._note(f"consumer groups not deleted: {', '.join(failed)}")
            names = [t for t in await admin.list_topics() if not t.startswith("__")]
            if names:
                await admin.delete_topics(names)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                left = [t for t in await admin.list_topics() if not t.startswith("__")]
                left_groups = [g[0] for g in await admin.list_consumer_groups()]
                if not left and not left_groups:
                    return True
                await asyncio.sleep(0.1)
            return self._note("topics or groups were not gone within 30 s")
        except Exception as err:  # noqa: BLE001 - any failure means: start afresh
            return self._note(f"emptying it failed: {err!r}")
        finally:
            await admin.close()

    def _note(self, why: str) -> bool:
        """Record why the broker is replaced (in `replacements.log` beside its data dirs); False."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "replacements.log", "a") as f:
            f.write(f"broker-{self.generation} replaced: {why}\n")
        return False

    def stop(self) -> None:
        broker.stop(self.cfg)


def _start(cfg: Config) -> None:
    broker.start(cfg, PROPERTIES)


_shared: SharedBroker | None = None


def install(shared: SharedBroker | None) -> None:
    """Set (or clear) this process's shared broker; tests/conftest.py does it once per session."""
    global _shared
    _shared = shared


def current() -> SharedBroker | None:
    return _shared
