"""The delivered index and its whole protocol: which (message id, recipient) pairs were delivered, read from
`mail.delivered`, and the records egress writes there around one attempt.

The protocol, in the order one attempt meets it: `suppress` leaves out the recipients already delivered (a
DuplicateSuppressed fact); `write_ahead` marks the rest `sending` (appended while the session starts, DATA waits
for it) and names those an earlier attempt left `sending` (its outcome unknown: the server may get them twice);
`settle` turns the attempt's outcome into index records (`1` for each delivered recipient, a tombstone clearing
the mark of each recipient not delivered, the mark kept where the connection dropped after DATA); `append` writes
the attempt's facts first and its index records only once Kafka acknowledged them, so the index says delivered
only once the MessageDelivered recording it is in Kafka.

Reads: `mail.delivered` with its own group-less consumer, and follows it. At start-up it seeks every partition to
the first record younger than the index lifetime (Kafka's time index, `offsets_for_times`), so it reads only what is
live, never the whole history. `catch_up()` waits until every record written before the call is in memory, so that
a replica that takes over a partition after a rebalance knows what the previous owner delivered.

Bounded: an entry lives as long as a duplicate can still arrive — while any mail topic can still hold (or replay)
the message: the longest of the queue lifetimes and `kafka.mail_retention_s`, plus `delivery.delivered_index_margin_s`
(`topics.delivered_lifetime_ms`). Older entries are dropped from memory as time passes (entries are kept in the
order they were written, so dropping is a walk from the oldest end), and Kafka deletes them from the topic
(`cleanup.policy` `compact,delete` with `retention.ms` = the same lifetime, declared in mailgate/core/topics.py).
Memory and start-up time follow the delivery rate over one lifetime, not the history.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail.outputs import Output, audit
from schemas import DuplicateSuppressed, MessageDelivered

log = logging.getLogger("mailgate.egress.index")

DELIVERED_MARK = b"1"
"""mail.delivered value: this (message id, recipient) was delivered (the downstream server answered 250)."""
SENDING_MARK = b"sending"
"""mail.delivered value written before DATA: an attempt is sending to this recipient. A later record replaces it
(delivered, or a tombstone when the attempt ended otherwise); one still there after a crash means the outcome of
that attempt is unknown, and the next attempt says so in its DeliveryAttempted event."""

EXPIRE_EVERY_S = 60.0
"""How often entries past the lifetime are dropped from memory."""
FOLLOW_FETCH_BYTES = 64 * 1024
FOLLOW_FETCH_WAIT_MS = 200
"""A following fetch returns once this many bytes are there, or after this long."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def delivered_key(message_id: str, rcpt: str) -> str:
    """The key of one (message id, recipient) pair in mail.delivered."""
    return f"{message_id}|{rcpt.lower()}"


@dataclass
class WriteAhead:
    """One attempt's write-ahead: the recipients it sends to, and what the index knew of them before."""

    keys: dict[str, str]
    """recipient -> its mail.delivered key."""
    marks: list[Output]
    """The `sending` records to append before DATA."""
    unknown: list[str]
    """Recipients an earlier attempt left `sending` (it died before recording its outcome)."""
    lost: list[str] = field(default_factory=list)
    """Recipients whose connection dropped after DATA: the server may have them, so their mark stays."""


class _Expiring:
    """Keys with the time they were written, oldest first; keys older than the lifetime are dropped."""

    def __init__(self, lifetime_ms: int) -> None:
        self.lifetime_ms = lifetime_ms
        self.written: dict[str, int] = {}

    def put(self, key: str, at_ms: int) -> None:
        self.written.pop(key, None)  # re-insert at the young end
        self.written[key] = at_ms

    def discard(self, key: str) -> None:
        self.written.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self.written

    def __len__(self) -> int:
        return len(self.written)

    def expire(self, now_ms: int) -> int:
        """Drop the entries written before now - lifetime; returns how many."""
        cutoff = now_ms - self.lifetime_ms
        dropped = 0
        while self.written:
            key, at = next(iter(self.written.items()))
            if at >= cutoff:
                break
            del self.written[key]
            dropped += 1
        return dropped


class DeliveredIndex:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.lifetime_ms = topics.delivered_lifetime_ms(cfg)
        self.keys = _Expiring(self.lifetime_ms)
        self.sending = _Expiring(self.lifetime_ms)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._position: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._expired_at = time.monotonic()
        self.records_read = 0
        """Records read from mail.delivered since start (start-up reads only the live ones)."""

    async def start(self) -> None:
        # Following needs no haste (a replica taking over a partition calls catch_up, which waits for every record
        # written before it), so a fetch waits for FOLLOW_FETCH_BYTES or FOLLOW_FETCH_WAIT_MS: otherwise the broker
        # answers a fetch for nearly every record egress writes, two or more per message.
        c = kafka.consumer(self.cfg, f"mailgate-egress-index-{self.cfg.node_name}", None,
                           isolation_level="read_uncommitted", fetch_min_bytes=FOLLOW_FETCH_BYTES,
                           fetch_max_wait_ms=FOLLOW_FETCH_WAIT_MS)
        await c.start()
        tps = await kafka.assign_whole_topic(c, topics.DELIVERED)
        await self._seek_to_live(c, tps)
        self._consumer = c
        self._task = asyncio.create_task(self._follow())
        await self.catch_up()
        log.info("delivered index loaded: %d entries (lifetime %d s)", len(self.keys), self.lifetime_ms // 1000)

    async def _seek_to_live(self, c, tps: list[TopicPartition]) -> None:
        """Position each partition at its first record younger than the lifetime (the end if there is none)."""
        since = _now_ms() - self.lifetime_ms
        found = await c.offsets_for_times({tp: since for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            if hit is None:
                await c.seek_to_end(tp)
            else:
                c.seek(tp, hit.offset)

    def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the delivered index is not loaded")
        return self._consumer

    async def _follow(self) -> None:
        c = self._open()
        while True:
            batch = await c.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                self.records_read += len(records)
                for r in records:
                    self.apply(r.key.decode(), r.value, r.timestamp)
            if time.monotonic() - self._expired_at >= EXPIRE_EVERY_S:
                self.expire()
            async with self._progress:
                for tp in c.assignment():
                    self._position[tp] = await c.position(tp)
                self._progress.notify_all()

    async def catch_up(self, timeout_s: float = 30) -> None:
        c = self._open()
        ends = await c.end_offsets(list(c.assignment()))

        def done() -> bool:
            return all(self._position.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(done), timeout_s)

    def apply(self, key: str, value: bytes | None, at_ms: int | None = None) -> None:
        """One mail.delivered record: delivered, being sent (write-ahead), or a tombstone clearing the latter."""
        at_ms = _now_ms() if at_ms is None else at_ms
        if at_ms < _now_ms() - self.lifetime_ms:
            return  # past its lifetime: no duplicate of it can arrive any more
        if value == SENDING_MARK:
            if key not in self.keys:
                self.sending.put(key, at_ms)
        elif value:
            self.keys.put(key, at_ms)
            self.sending.discard(key)
        else:
            self.sending.discard(key)

    def expire(self, now_ms: int | None = None) -> int:
        """Drop entries past their lifetime from memory; returns how many."""
        self._expired_at = time.monotonic()
        now_ms = _now_ms() if now_ms is None else now_ms
        dropped = self.keys.expire(now_ms) + self.sending.expire(now_ms)
        if dropped:
            log.info("delivered index: %d entries past their lifetime dropped, %d live", dropped, len(self.keys))
        return dropped

    def was_sending(self, key: str) -> bool:
        """An attempt began sending to this recipient and its outcome was never recorded."""
        return key in self.sending and key not in self.keys

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str) -> None:
        self.keys.put(key, _now_ms())

    # --- the protocol around one attempt ------------------------------------------------------------------------

    def suppress(self, routed, node: str) -> tuple[list[str], list[Output]]:
        """The recipients still to attempt, and a DuplicateSuppressed for those already delivered (none when the
        operator forces a redelivery)."""
        if routed.force_redeliver:
            return list(routed.recipients), []
        mid = routed.message_id
        todo = [r for r in routed.recipients if delivered_key(mid, r) not in self]
        done = [r for r in routed.recipients if r not in todo]
        if not done:
            return todo, []
        log.info("duplicate suppressed id=%s rcpts=%s", mid, ",".join(done), extra={"message_id": mid})
        return todo, [audit(DuplicateSuppressed(message_id=mid, occurred_at=now_ms(), node=node, recipients=done,
                                                reason="already delivered"))]

    def write_ahead(self, mid: str, todo: list[str]) -> WriteAhead:
        """The `sending` marks for `todo`, to be on record before DATA (a crash mid-delivery leaves a trace)."""
        keys = {r: delivered_key(mid, r) for r in todo}
        unknown = [r for r in todo if self.was_sending(keys[r])]
        if unknown:
            log.warning("id=%s rcpts=%s: an earlier attempt died before recording its outcome; the server may "
                        "get them twice", mid, ",".join(unknown), extra={"message_id": mid})
        return WriteAhead(keys, [Output(topics.DELIVERED, keys[r], SENDING_MARK) for r in todo], unknown)

    def settle(self, ahead: WriteAhead, outputs: list[Output]) -> list[Output]:
        """The index records of an attempt whose facts are `outputs`: `1` for each recipient a MessageDelivered
        names (known to this replica at once), a tombstone for each other one not lost after DATA."""
        delivered = [r for o in outputs if isinstance(o.record, MessageDelivered) for r in o.record.recipients]
        for r in delivered:
            self.add(ahead.keys[r])
        return ([Output(topics.DELIVERED, ahead.keys[r], DELIVERED_MARK) for r in delivered]
                + [Output(topics.DELIVERED, key, None) for r, key in ahead.keys.items()
                   if r not in delivered and r not in ahead.lost])

    @staticmethod
    async def append(emit: Callable[[list[Output]], Awaitable[None]], outputs: list[Output]) -> None:
        """An attempt's outputs: its facts (events, retry records, DSNs) first, then its records in mail.delivered.
        Appended together, the two can go in separate produce requests: a replica killed between them left a
        delivery the index knew and the audit log did not, and the survivor's DuplicateSuppressed pointed at no
        recorded delivery. Killed between the two appends now, the write-ahead mark is still `sending`: the
        survivor attempts again and its DeliveryAttempted says the server may get the message twice."""
        facts = [o for o in outputs if o.topic != topics.DELIVERED]
        index = [o for o in outputs if o.topic == topics.DELIVERED]
        if facts:
            await emit(facts)
        if index:
            await emit(index)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
