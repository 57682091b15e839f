"""The one mail.config follower per process (LiveConfig), against a real broker: the snapshot at start and the
follower after it are one reader, so a record written between the two is applied, not skipped."""
from __future__ import annotations

import asyncio
import time

import pytest

from mailgate.ops.settings import config_writer
from mailgate.core.config import parse_config
from mailgate.core.live_config import LiveConfig
from mailgate.mail.directory.purge import follow_purges, request_purge
from schemas import CachePurgeRequested
from tests.support.harness import Gateway


@pytest.fixture(scope="module")
def broker_gw(tmp_path_factory, kafka_jars):
    gw = Gateway(tmp_path_factory.mktemp("live"))
    gw.configure({})
    gw.start_broker()
    yield gw
    gw.release()


async def _until(check, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class WriteInTheWindow(LiveConfig):
    """Writes a gateway change and a cache purge after the snapshot was read and before the follower starts."""

    async def _snapshot(self, reader):
        snapshot = await super()._snapshot(reader)
        desired = parse_config({"outbound_gateways": [{"name": "in-the-window", "address": "192.0.2.7"}]})
        await config_writer.append(self.base, config_writer.diff({}, desired, operator="test"))
        await request_purge(self.base, "window.test", operator="test")
        return snapshot


async def test_a_change_written_between_snapshot_and_follow_is_applied(broker_gw):
    live = WriteInTheWindow(broker_gw.cfg, "test")
    purges = []
    live.on_record(CachePurgeRequested, purges.append)
    try:
        started = await live.start()
        assert "in-the-window" not in [g.name for g in started.outbound_gateways]  # not in the snapshot
        await _until(lambda: "in-the-window" in [g.name for g in live.current.outbound_gateways])
        await _until(lambda: [p.target for p in purges] == ["window.test"])
    finally:
        await live.close()


async def test_purges_reach_the_directories_through_the_config_follower(broker_gw):
    forgot = []

    class Directory:
        def purge(self, target):
            forgot.append(target)
            return 1

    live = LiveConfig(broker_gw.cfg, "ingress")
    follow_purges(live, lambda: {"gw": Directory()}, "ingress")
    await request_purge(broker_gw.cfg, "before.test", operator="test")  # older than the snapshot: not applied
    try:
        await live.start()
        await asyncio.wait_for(live.following.wait(), 20)
        await request_purge(broker_gw.cfg, "after.test", operator="test")
        await _until(lambda: forgot == ["after.test"])
    finally:
        await live.close()
