"""Reading the audit log: the timeline of one message from `mail.events`, and a range reader for any topic.

Reads: `mail.events` (or any mailgate topic, for `events`, `queue` and `replay`) with a group-less consumer, so an
operator tool never joins or disturbs a stage's consumer group. Emits: decoded events, or lines / JSON objects for
people. A record that does not decode is shown as such (`Undecodable`), never raised.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from schemas import UndecodableRecord, decode, event_name, to_json_dict


@dataclass(frozen=True)
class Undecodable:
    """A record in a topic that is not a mailgate event (garbage, or a schema this version does not know)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    reason: str


async def read_topic(cfg: Config, topic: str, *, since_ms: int | None = None, from_offset: int | None = None,
                     until_ms: int | None = None, follow: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """Yield (kafka record, event or Undecodable) for `topic`, per partition in log order.

    Starts at the first record written at or after `since_ms` (Kafka record timestamp), or at offset `from_offset`
    of every partition, or at the beginning. Stops at the end as it was when called, unless `follow`; records
    stamped after `until_ms` are skipped.
    """
    c = kafka.consumer(cfg, "mailgate-operator", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        tps = await kafka.assign_whole_topic(c, topic)
        ends = await c.end_offsets(tps)
        if since_ms is not None:
            found = await c.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                c.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
        elif from_offset is not None:
            starts = await c.beginning_offsets(tps)
            for tp in tps:
                c.seek(tp, min(max(from_offset, starts[tp]), ends[tp]))

        async def behind() -> bool:
            for tp, end in ends.items():
                if await c.position(tp) < end:
                    return True
            return False

        while follow or await behind():
            batch = await c.getmany(timeout_ms=500, max_records=2000)
            for tp in sorted(batch, key=lambda t: t.partition):
                for r in batch[tp]:
                    if not follow and r.offset >= ends[tp]:
                        continue
                    if until_ms is not None and r.timestamp > until_ms:
                        continue
                    yield r, _decode(r)
    finally:
        await c.stop()


def _decode(r) -> Any:
    try:
        return decode(r.value)
    except UndecodableRecord as err:
        return Undecodable(r.topic, r.partition, r.offset, r.timestamp, str(err))


async def read_events(cfg: Config, message_id: str | None = None) -> list:
    """Every event in mail.events (of one message, if given), ordered by when it occurred."""
    key = message_id.encode() if message_id else None
    out = [e async for r, e in read_topic(cfg, topics.EVENTS) if key is None or r.key == key]
    return sorted(out, key=lambda e: getattr(e, "occurred_at", None) or getattr(e, "timestamp", 0))


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _reply(rep) -> str:
    return " ".join(str(p) for p in (rep.code, rep.enhanced_code, rep.text) if p)


def _details(e) -> str:
    """The fields worth a human's attention; SMTP replies and reasons spelled out in full."""
    name = event_name(e)
    if name == "DeliveryAttempted":
        parts = [f"attempt={e.attempt} via {e.gateway or '-'} {e.host}:{e.port}"]
        parts += [f"{r.recipient}: {_reply(r.reply)}" for r in e.results]
        if e.error:
            parts.append(f"error: {e.error}")
        if e.tls_version:
            parts.append(f"tls={e.tls_version}")
        return "; ".join(parts)
    if name == "DeliveryDeferred":
        return (f"attempt={e.attempt} {','.join(e.recipients)} reason: {e.reason}; "
                f"next attempt {when(e.next_attempt_at)} via {e.retry_topic}")
    d = to_json_dict(e)
    skip = {"type", "message_id", "occurred_at", "node", "body", "body_sha256"}
    return ", ".join(f"{k}={v}" for k, v in d.items() if k not in skip and v not in (None, [], ""))


def describe(e, with_id: bool = False) -> str:
    if isinstance(e, Undecodable):
        return (f"{when(e.timestamp)}  {'UNDECODABLE':20} {e.topic}[{e.partition}]@{e.offset}: {e.reason}")
    mid = f" {getattr(e, 'message_id', None) or '-'}" if with_id else ""
    return f"{when(e.occurred_at)}  {event_name(e):20}{mid} [{e.node}] {_details(e)}"


def json_of(e) -> dict:
    if isinstance(e, Undecodable):
        return {"type": "Undecodable", "topic": e.topic, "partition": e.partition, "offset": e.offset,
                "timestamp": e.timestamp, "reason": e.reason}
    return to_json_dict(e)


async def print_trace(cfg: Config, message_id: str, as_json: bool = False) -> int:
    events = await read_events(cfg, message_id)
    if not events:
        print(f"no events for {message_id}")
        return 1
    for e in events:
        print(json.dumps(json_of(e)) if as_json else describe(e))
    return 0


__all__ = ["Undecodable", "json_of", "describe", "print_trace", "read_events", "read_topic", "when"]
