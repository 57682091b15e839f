"""The egress consumer: fetches routed mail, runs each record in its own task, and commits what is done.

Reads: `mail.outbound`, every `mail.retry.<delay>s` tier and `mail.hold` (consumer group `mailgate-egress`;
replicas share the partitions). Emits: each decoded record (or the DeadLettered it became) to the queue manager
(egress/queue_manager.py), which decides when it is due and what becomes of it; offsets to commit. Every record is
handled in its own task as soon as it is fetched (up to `delivery.max_records_in_flight` and
`delivery.max_bytes_in_flight`), while its partition keeps fetching; records of one message go one after the other.
An offset is committed only after every record before it was handled and Kafka acknowledged what was written
(egress/commit_order.py). A record not yet due pauses its partition until it is, so a slow or unreachable
destination holds up only the records in flight to it; a record a command makes urgent is taken ahead of one that
waits. On a rebalance the revoked partitions' records in flight finish and are committed before they go; a newly
assigned partition's first batch waits for the delivered index to catch up. Samples the consumer lag.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from egress.commit_order import Lane
from mailgate.core import kafka, metrics
from mailgate.core.config import Config
from mailgate.core.deadletter import decode_or_dead_letter
from mailgate.core.ids import now_ms
from schemas import DeadLettered, MessageRouted

log = logging.getLogger("mailgate.egress")

RECORD_SIZE_HINT = 1024 * 1024
"""The record size assumed before any was seen: a first fetch takes few records, then it follows their sizes."""


def replica_id(cfg: Config) -> str:
    """This process's Kafka client id in the egress group: what the consumer group lists and acks name."""
    return f"mailgate-egress-{cfg.node_name}-{os.getpid()}"


class Manager(Protocol):
    """What the consumer asks of the queue manager (egress/queue_manager.py)."""

    def due_in_ms(self, tp: TopicPartition, rec, routed: MessageRouted, now: int) -> int: ...

    def urgent(self, routed: MessageRouted) -> bool: ...

    async def handle(self, topic: str, routed: MessageRouted | None, dead: DeadLettered | None) -> None: ...


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, consumer: "RecordConsumer") -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        await self.consumer._drain(revoked, timeout_s=300)

    async def on_partitions_assigned(self, assigned) -> None:
        self.consumer.needs_catch_up = True


class RecordConsumer:
    def __init__(self, cfg: Config, in_topics: list[str], manager: Manager,
                 catch_up: Callable[[], Awaitable[None]]) -> None:
        self.cfg = cfg
        self.node = cfg.node_name
        self.in_topics = in_topics
        self.manager = manager
        self.catch_up = catch_up
        """Waits until the delivered index knows every record written before (egress/delivered_index.py)."""
        self.needs_catch_up = True
        # Fetch sizes are soft limits since KIP-74 (a record larger than them still comes, alone): small ones keep
        # the records fetched ahead of delivery, and so egress's memory, small with large messages.
        self.consumer = kafka.consumer(cfg, replica_id(cfg), "mailgate-egress", max_poll_interval_ms=600_000,
                                       max_partition_fetch_bytes=1024 * 1024, fetch_max_bytes=8 * 1024 * 1024)
        self._in_flight_state()
        self.consuming = False
        """Subscribed and fetching (what /readyz reports)."""

    def _in_flight_state(self) -> None:
        self._resume: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._lanes: dict[TopicPartition, Lane] = {}
        """Per assigned partition, its records in flight and what may be committed (egress/commit_order.py)."""
        self._lane_tasks: dict[TopicPartition, set[asyncio.Task]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self._ahead: set[tuple[str, int, int]] = set()
        """(topic, partition, offset) of records handled ahead of a waiting one: skipped when read again."""
        self._tasks: set[asyncio.Task] = set()
        self._done: list[asyncio.Task] = []  # finished, not yet looked at by _raise_failed
        self._finished = asyncio.Event()  # set when a record's task finishes (a slot is free)
        self._by_message: dict[tuple[str, str], asyncio.Task] = {}
        self._bytes = 0  # of the records in flight
        self._size_hint = float(RECORD_SIZE_HINT)
        """A decaying maximum of the sizes of recent records (see _records_to_take)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; then let the records in flight finish (up to 30 s), commit them, and leave."""
        self.consumer.subscribe(self.in_topics, listener=_Rebalance(self))
        await self.consumer.start()
        log.info("egress consuming %s", ", ".join(self.in_topics))
        self.consuming = True
        lag = asyncio.create_task(metrics.sample_lag(self.consumer))
        limit = self.cfg.delivery.max_records_in_flight
        try:
            while not stop.is_set():
                self._raise_failed()
                room = limit - len(self._tasks)
                if self._tasks and (room <= 0 or self._bytes >= self.cfg.delivery.max_bytes_in_flight):
                    # as many records (or bytes) in flight as allowed: let some finish before taking more
                    await self._one_finished(timeout_s=0.1)
                    await self._commit_finished(every_s=self.cfg.delivery.commit_interval_s)
                    continue
                batch = await self.consumer.getmany(timeout_ms=50 if self._tasks else 300,
                                                    max_records=self._records_to_take(room))
                if batch and self.needs_catch_up:
                    await self.catch_up()
                    self.needs_catch_up = False
                assigned = self.consumer.assignment()
                for tp, recs in batch.items():
                    if tp not in assigned:
                        # Revoked while we awaited (a rebalance during the catch-up): the new owner reads these
                        # records from the committed offset. Delivering them here too would send them twice.
                        continue
                    self._dispatch(tp, recs)
                await self._commit_finished(every_s=self.cfg.delivery.commit_interval_s)
        finally:
            self.consuming = False
            lag.cancel()
            await asyncio.gather(lag, return_exceptions=True)
            await self._drain(list(self._lanes), timeout_s=30)
            for h in self._resume.values():
                h.cancel()
            await self.consumer.stop()

    def _records_to_take(self, room: int) -> int:
        """How many records the next fetch may return: the free room, and no more than fit in the bytes still free
        at the size of recent records. The bytes bound is checked before a fetch, but one fetch can return many
        records: well-compressed large messages (a 1 MB body that compresses to a few KB) would otherwise come
        by the hundred and be decompressed together. At least one record, however large."""
        free = self.cfg.delivery.max_bytes_in_flight - self._bytes
        return max(1, min(room, int(free // self._size_hint)))

    def _saw(self, size: int) -> None:
        """A record of `size` bytes was taken: the hint follows a larger one at once, a smaller one slowly."""
        self._size_hint = max(float(size), self._size_hint * 0.98, 1024.0)

    def _dispatch(self, tp: TopicPartition, records) -> None:
        """Start the due records of one partition's batch, each as its own task (the partition keeps fetching);
        at the first record not due, seek back to it and pause the partition until it is."""
        lane = self._lanes.setdefault(tp, Lane())
        lane.reading_from(records[0].offset)
        if lane.wait_at is not None:
            return  # records fetched before the seek back to the waiting record: read again later
        now = now_ms()
        for rec in records:
            if (tp.topic, tp.partition, rec.offset) in self._ahead:  # handled ahead of its turn already
                lane.add(rec.offset, done=True)
                continue
            routed, dead = decode_or_dead_letter(rec, MessageRouted, self.node)
            if dead is not None:
                if lane.wait_at is None:
                    self._start(tp, lane, rec, None, dead)
                continue
            if lane.wait_at is None:
                delay_ms = self.manager.due_in_ms(tp, rec, routed, now)
                if delay_ms <= 0 or self.manager.urgent(routed):
                    self._start(tp, lane, rec, routed, None)
                    continue
                lane.wait(rec.offset)
                self.consumer.seek(tp, rec.offset)
                self.consumer.pause(tp)
                self._resume[tp] = asyncio.get_running_loop().call_later(delay_ms / 1000, self._unpause, tp)
            elif self.manager.urgent(routed):  # flushed, deleted or bounced behind a record not yet due
                self._ahead.add((tp.topic, tp.partition, rec.offset))
                self._start(tp, lane, rec, routed, None)

    def _start(self, tp: TopicPartition, lane: Lane, rec, routed, dead) -> None:
        """Handle one record in its own task. Records of one message to one destination (a copy the processor wrote
        again after a crash) go one after the other, so the second sees the first's delivery in the index; the parts
        of a message split by recipient domain (direct delivery) go at once."""
        lane.add(rec.offset)
        size = len(rec.value or b"")
        self._bytes += size
        self._saw(size)
        key = (routed.message_id, routed.route.destination) if routed is not None else None
        before = self._by_message.get(key) if key is not None else None

        async def handle() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            await self.manager.handle(tp.topic, routed, dead)
            lane.finish(rec.offset)

        def release(t: asyncio.Task) -> None:
            self._bytes -= size
            self._done.append(t)
            self._finished.set()

        task = asyncio.create_task(handle())
        task.add_done_callback(release)
        self._tasks.add(task)
        self._lane_tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(self._lane_tasks[tp].discard)
        if key is not None:
            self._by_message[key] = task

            def forget(t: asyncio.Task) -> None:
                if self._by_message.get(key) is t:
                    del self._by_message[key]
            task.add_done_callback(forget)

    def _raise_failed(self) -> None:
        """An unexpected error in a record's task stops egress: the record is read again from the committed offset."""
        while self._done:
            task = self._done.pop()
            self._tasks.discard(task)
            if not task.cancelled():
                task.result()

    async def _one_finished(self, timeout_s: float) -> None:
        """Wait until a record's task finishes, or `timeout_s`. (asyncio.wait on every task in flight would add
        and remove a callback on each of them, hundreds, every time one finishes.)"""
        self._finished.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()

    async def _settle(self) -> None:
        """Wait until every record in flight is handled (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
            self._raise_failed()

    async def _commit_finished(self, every_s: float = 0) -> None:
        """Commit, per partition, the offset before which every record is done (egress/commit_order.py); not
        again within `every_s` of the last commit (a commit is a broker round trip)."""
        self._raise_failed()
        if time.monotonic() - self._committed_at < every_s:
            return
        self._committed_at = time.monotonic()
        commits = {}
        for tp, lane in self._lanes.items():
            point = lane.commit_point()
            if point is not None and point != self._committed.get(tp):
                commits[tp] = point
        if commits:
            await self.consumer.commit(commits)
            for tp, point in commits.items():
                self._committed[tp] = point
                if self._ahead:  # a batch starts at the committed offset: what lies before it is not read again
                    self._ahead = {k for k in self._ahead
                                   if (k[0], k[1]) != (tp.topic, tp.partition) or k[2] >= point}

    async def _drain(self, partitions, timeout_s: float) -> None:
        """Let the records in flight of `partitions` finish (revoked, or shutting down), commit them, forget them."""
        partitions = [tp for tp in partitions if tp in self._lanes]
        tasks = [t for tp in partitions for t in self._lane_tasks.get(tp, ())]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)
        await self._commit_finished()
        for tp in partitions:
            self._lanes.pop(tp, None)
            self._lane_tasks.pop(tp, None)
            self._committed.pop(tp, None)
            handle = self._resume.pop(tp, None)
            if handle is not None:
                handle.cancel()

    def wake(self) -> None:
        """A queue command arrived: read every waiting partition again (flushed, deleted, released mail)."""
        for tp in list(self._resume):
            self._resume.pop(tp).cancel()
            if tp in self.consumer.assignment():
                self.consumer.resume(tp)

    def _unpause(self, tp: TopicPartition) -> None:
        self._resume.pop(tp, None)
        if tp in self.consumer.assignment():
            self.consumer.resume(tp)
