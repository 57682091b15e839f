"""Egress start-up reads only the live part of mail.delivered (issue 14): history past the lifetime is skipped.

Real broker: pairs delivered long ago (record timestamps older than the index lifetime) and pairs delivered now
are written to mail.delivered; a DeliveredIndex started against it knows only the recent ones.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from egress.delivered_index import DeliveredIndex
from mailgate.core import kafka, topics

pytestmark = pytest.mark.scenario


async def write_and_load(cfg) -> tuple[DeliveredIndex, int]:
    now = int(time.time() * 1000)
    p = kafka.producer(cfg, "test-history")
    await p.start()
    try:
        lifetime = topics.delivered_lifetime_ms(cfg)
        for i in range(200):  # old history first, as it was written over the months
            await p.send(topics.DELIVERED, b"1", key=f"old{i}|a@x.test".encode(), timestamp_ms=now - lifetime - 3600_000)
        for i in range(5):
            await p.send(topics.DELIVERED, b"1", key=f"new{i}|a@x.test".encode())
        await p.flush()
    finally:
        await p.stop()
    idx = DeliveredIndex(cfg)
    await idx.start()
    await idx.close()
    return idx, lifetime


def test_egress_start_up_loads_only_pairs_still_within_their_lifetime(gateway):
    gateway.configure({})
    gateway.start_broker()
    idx, _ = asyncio.run(write_and_load(gateway.cfg))
    assert sorted(idx.keys.written) == [f"new{i}|a@x.test" for i in range(5)]
    assert idx.records_read == 5  # the old history was never read, not just read and dropped
