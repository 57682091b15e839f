"""The one way mailgate reads a topic without a consumer group: read it to its end, or follow it from a position.

Reads: every partition of one topic, with a group-less consumer (it never joins or disturbs a stage's consumer
group, and commits nothing). Emits: (Kafka record, decoded event) pairs, the event decoded by `schemas`' codec or an
`Undecodable` saying why not (never raised). Positions are explicit offsets per partition, so a snapshot read "to
the end" can hand its own end offsets to the follower that continues after it, and nothing written in between is
missed. Used by the operator tools (audit, events, queue, replay, quarantine), `config_events.read_state` and the
one `mail.config` follower per process (`live_config`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from mailgate.core import kafka
from mailgate.core.config import Config
from schemas import UndecodableRecord, decode

Offsets = dict[int, int]
"""A position in a topic: the next offset to read, per partition number."""


@dataclass(frozen=True)
class Undecodable:
    """A record in a topic that is not a mailgate event (garbage, or a schema this version does not know)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    reason: str


def decoded(record) -> Any:
    """The event in a Kafka record, or an Undecodable saying why there is none."""
    try:
        return decode(record.value)
    except UndecodableRecord as err:
        return Undecodable(record.topic, record.partition, record.offset, record.timestamp, str(err))


class TopicReader:
    """A group-less consumer assigned every partition of `topic`. Use `async with TopicReader(...) as r:`."""

    def __init__(self, cfg: Config, topic: str, client_id: str) -> None:
        self.cfg = cfg
        self.topic = topic
        self.client_id = client_id
        self.partitions: list[TopicPartition] = []
        self._c: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> None:
        # No stage writes transactionally, so read_uncommitted reaches the end offsets exactly (no markers).
        c = self._c = kafka.consumer(self.cfg, self.client_id, None, isolation_level="read_uncommitted")
        await c.start()
        try:
            self.partitions = await kafka.assign_whole_topic(c, self.topic)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._c is not None:
            c, self._c = self._c, None
            await c.stop()

    @property
    def _open(self) -> AIOKafkaConsumer:
        if self._c is None:
            raise RuntimeError(f"the reader of {self.topic} is not open")
        return self._c

    async def end_offsets(self) -> Offsets:
        """The offset after the last record of each partition, now."""
        ends = await self._open.end_offsets(self.partitions)
        return {tp.partition: ends[tp] for tp in self.partitions}

    async def seek(self, start: Mapping[int, int] | str = "beginning", *, since_ms: int | None = None) -> None:
        """Position every partition: at `start` ("beginning", "end", or offsets per partition, clamped to what the
        log holds), or at the first record stamped at or after `since_ms`."""
        c = self._open
        if since_ms is not None:
            found = await c.offsets_for_times({tp: since_ms for tp in self.partitions})
            ends = await self.end_offsets()
            for tp in self.partitions:
                c.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp.partition])
        elif start == "beginning":
            await c.seek_to_beginning(*self.partitions)
        elif start == "end":
            await c.seek_to_end(*self.partitions)
        elif isinstance(start, str):
            raise ValueError(f"not a start: {start!r} (beginning, end, or offsets per partition)")
        else:
            firsts = await c.beginning_offsets(self.partitions)
            ends = await self.end_offsets()
            for tp in self.partitions:
                want = start.get(tp.partition, firsts[tp])
                c.seek(tp, min(max(want, firsts[tp]), ends[tp.partition]))

    async def positions(self) -> Offsets:
        return {tp.partition: await self._open.position(tp) for tp in self.partitions}

    async def read_to(self, ends: Mapping[int, int]) -> AsyncIterator[tuple[Any, Any]]:
        """Yield (record, event) up to (not including) `ends`, per partition in log order, then stop. Afterwards
        every partition is positioned exactly at its end offset, so `batches()` continues from there."""
        c = self._open
        by_tp = {tp: ends[tp.partition] for tp in self.partitions}
        while any([await c.position(tp) < end for tp, end in by_tp.items()]):
            batch = await c.getmany(timeout_ms=500, max_records=2000)
            for tp in sorted(batch, key=lambda t: t.partition):
                for r in batch[tp]:
                    if r.offset < by_tp[tp]:
                        yield r, decoded(r)
        for tp, end in by_tp.items():
            c.seek(tp, end)  # a fetch may have gone past the end: continue exactly after what was read

    async def batches(self, timeout_ms: int = 500) -> AsyncIterator[list[tuple[Any, Any]]]:
        """Follow the topic from the current position: one (possibly empty) list of (record, event) per fetch."""
        while True:
            batch = await self._open.getmany(timeout_ms=timeout_ms, max_records=2000)
            yield [(r, decoded(r)) for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]


async def read_topic(cfg: Config, topic: str, *, client_id: str = "mailgate-operator", since_ms: int | None = None,
                     from_offset: int | None = None, follow: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """Yield (record, event or Undecodable) of `topic`, per partition in log order.

    Starts at the first record written at or after `since_ms` (Kafka record timestamp), or at offset `from_offset`
    of every partition, or at the beginning. Stops at the end as it was when called, unless `follow`.
    """
    async with TopicReader(cfg, topic, client_id) as reader:
        if since_ms is not None:
            await reader.seek(since_ms=since_ms)
        elif from_offset is not None:
            await reader.seek({tp.partition: from_offset for tp in reader.partitions})
        else:
            await reader.seek("beginning")
        async for item in reader.read_to(await reader.end_offsets()):
            yield item
        if follow:
            async for batch in reader.batches():
                for item in batch:
                    yield item


__all__ = ["Offsets", "TopicReader", "Undecodable", "decoded", "read_topic"]
