"""The delivered index: which (message id, recipient) pairs were already delivered, read from `mail.delivered`.

Reads: the compacted `mail.delivered` topic, from the beginning, with its own group-less consumer, and follows it.
Emits: membership answers. `catch_up()` waits until every record written before the call is in memory, so that a
replica that takes over a partition after a rebalance knows what the previous owner delivered.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from mailgate.core import kafka, topics
from egress.outcome import SENDING_MARK
from mailgate.core.config import Config

log = logging.getLogger("mailgate.egress.index")


class DeliveredIndex:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.keys: set[str] = set()
        self.sending: set[str] = set()
        self._consumer = None
        self._task: asyncio.Task | None = None
        self._position: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        c = kafka.consumer(self.cfg, f"mailgate-egress-index-{self.cfg.node_name}", None,
                           isolation_level="read_uncommitted")
        await c.start()
        await kafka.assign_whole_topic(c, topics.DELIVERED)
        self._consumer = c
        self._task = asyncio.create_task(self._follow())
        await self.catch_up()
        log.info("delivered index loaded: %d entries", len(self.keys))

    async def _follow(self) -> None:
        c = self._consumer
        while True:
            batch = await c.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    self.apply(r.key.decode(), r.value)
            async with self._progress:
                for tp in c.assignment():
                    self._position[tp] = await c.position(tp)
                self._progress.notify_all()

    async def catch_up(self, timeout_s: float = 30) -> None:
        c = self._consumer
        ends = await c.end_offsets(list(c.assignment()))

        def done() -> bool:
            return all(self._position.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(done), timeout_s)

    def apply(self, key: str, value: bytes | None) -> None:
        """One mail.delivered record: delivered, being sent (write-ahead), or a tombstone clearing the latter."""
        if value == SENDING_MARK:
            if key not in self.keys:
                self.sending.add(key)
        elif value:
            self.keys.add(key)
            self.sending.discard(key)
        else:
            self.sending.discard(key)

    def was_sending(self, key: str) -> bool:
        """An attempt began sending to this recipient and its outcome was never recorded."""
        return key in self.sending and key not in self.keys

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.keys.add(key)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
