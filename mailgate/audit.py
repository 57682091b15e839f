"""Reading the audit log: the timeline of one message from `mail.events`.

Reads: `mail.events` with a group-less consumer from the beginning to the current end. Emits: lines (or JSON
objects) for each event about the message, in order. A record that does not decode is shown as such.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from mailgate import kafka, topics
from mailgate.config import Config
from schemas import UndecodableRecord, decode, event_name, to_json_dict


async def read_events(cfg: Config, message_id: str | None = None) -> list:
    """Every event in mail.events (of one message, if given), in log order per partition."""
    c = kafka.consumer(cfg, "mailgate-audit", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        tps = await kafka.assign_whole_topic(c, topics.EVENTS)
        ends = await c.end_offsets(tps)
        out = []
        key = message_id.encode() if message_id else None
        async def behind() -> bool:
            for tp, end in ends.items():
                if await c.position(tp) < end:
                    return True
            return False

        while await behind():
            batch = await c.getmany(timeout_ms=500, max_records=5000)
            for recs in batch.values():
                for r in recs:
                    if key is not None and r.key != key:
                        continue
                    try:
                        out.append(decode(r.value))
                    except UndecodableRecord as err:
                        out.append({"type": "Undecodable", "reason": str(err), "offset": r.offset})
        return sorted(out, key=lambda e: e["occurred_at"] if isinstance(e, dict) and "occurred_at" in e
                      else getattr(e, "occurred_at", 0))
    finally:
        await c.stop()


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def describe(e) -> str:
    if isinstance(e, dict):
        return f"{'?':23}  {e['type']}: {e['reason']}"
    d = to_json_dict(e)
    skip = {"type", "message_id", "occurred_at", "node", "body", "body_sha256"}
    details = ", ".join(f"{k}={v}" for k, v in d.items() if k not in skip and v not in (None, [], ""))
    return f"{_when(e.occurred_at)}  {event_name(e):20} [{e.node}] {details}"


async def print_trace(cfg: Config, message_id: str, as_json: bool = False) -> int:
    events = await read_events(cfg, message_id)
    if not events:
        print(f"no events for {message_id}")
        return 1
    for e in events:
        print(json.dumps(e if isinstance(e, dict) else to_json_dict(e)) if as_json else describe(e))
    return 0
