"""`mailgate replay`: re-inject a range of a mail topic so the pipeline processes those messages again.

Reads: `mail.received` (MessageReceived with bodies), `mail.outbound` or a `mail.retry.<delay>s` tier
(MessageRouted with bodies), from an offset (of every partition) or a time, until a time, optionally one message.
Emits: first a `ReplayRequested` event to `mail.events` (operator, topic, range, reason, record count), then the
selected records: MessageReceived re-appended unchanged to `mail.received`; MessageRouted appended to
`mail.outbound`, due now, with `force_redeliver` only when asked. Egress suppresses (message id, recipient) pairs
already delivered unless `force_redeliver` is set, so a replay re-delivers nothing by default.
Progress goes to stderr. `--dry-run` counts and lists, and writes nothing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import sys
import time
from dataclasses import dataclass

from mailgate.core import kafka, topics
from mailgate.ops.audit.reader import Undecodable, read_topic, when
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from schemas import ReplayRequested, encode, event_name


class ReplayError(Exception):
    """The replay request cannot be carried out (unknown or unsupported topic, empty reason)."""


@dataclass(frozen=True)
class ReplayRequest:
    topic: str
    reason: str
    from_offset: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    message_id: str | None = None
    force_redeliver: bool = False
    dry_run: bool = False
    as_json: bool = False
    """--dry-run --json: one JSON object per selected record, then one for the total."""

    def range_text(self) -> str:
        start = f"offset {self.from_offset}" if self.from_offset is not None else f"since {when(self.since_ms)}Z"
        return start + (f" until {when(self.until_ms)}Z" if self.until_ms is not None else " to end")


EXPECTED = {topics.RECEIVED: "MessageReceived", topics.OUTBOUND: "MessageRouted"}


def expected_event(cfg: Config, topic: str) -> str:
    if topic in EXPECTED:
        return EXPECTED[topic]
    if topic in {topics.retry_topic(d) for d in cfg.delivery.retry_schedule_s}:
        return "MessageRouted"
    tiers = ", ".join(sorted(topics.retry_topic(d) for d in cfg.delivery.retry_schedule_s))
    raise ReplayError(f"cannot replay {topic}: only {topics.RECEIVED}, {topics.OUTBOUND} and the configured "
                      f"retry tiers ({tiers})")


def reinjection(req: ReplayRequest, e, value: bytes, now: int) -> tuple[str, str, bytes]:
    """(topic, key, value) that makes the pipeline process `e` again."""
    if event_name(e) == "MessageReceived":
        return topics.RECEIVED, e.message_id, value
    again = dataclasses.replace(e, not_before=min(e.not_before, now), force_redeliver=req.force_redeliver)
    return topics.OUTBOUND, e.route.destination or "unrouted", encode(again)


def selected(req: ReplayRequest, want: str, e) -> bool:
    if isinstance(e, Undecodable) or event_name(e) != want:
        return False
    if want == "MessageReceived" and e.body is None:
        return False
    return req.message_id is None or e.message_id == req.message_id


def operator() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no passwd entry in a container
        return "unknown"


class _Progress:
    def __init__(self, total: int, err=sys.stderr) -> None:
        self.total, self.err, self.last = total, err, 0.0

    def tick(self, done: int) -> None:
        t = time.monotonic()
        if done == self.total or t - self.last >= 1.0:
            self.last = t
            print(f"replay: {done}/{self.total} records", file=self.err, flush=True)


async def replay(cfg: Config, req: ReplayRequest, out=sys.stdout, err=sys.stderr) -> int:
    """Carry out `req`; the number of records re-injected (or, for a dry run, that would be)."""
    if not req.reason.strip():
        raise ReplayError("a reason is required (--reason)")
    want = expected_event(cfg, req.topic)
    scan = dict(since_ms=req.since_ms, from_offset=req.from_offset, until_ms=req.until_ms)
    chosen: set[tuple[int, int]] = set()  # (partition, offset): the second pass writes exactly these
    skipped = 0
    async for rec, e in read_topic(cfg, req.topic, **scan):
        if selected(req, want, e):
            chosen.add((rec.partition, rec.offset))
            if req.dry_run and req.as_json:
                print(json.dumps({"topic": req.topic, "partition": rec.partition, "offset": rec.offset,
                                  "message_id": e.message_id}), file=out)
            elif req.dry_run:
                print(f"would replay {req.topic}[{rec.partition}]@{rec.offset} {e.message_id}", file=out)
        elif isinstance(e, Undecodable):
            skipped += 1
    if skipped:
        print(f"replay: skipping {skipped} undecodable record(s) (they are in mail.dlq)", file=err)
    total = len(chosen)
    if req.as_json and (req.dry_run or total == 0):
        print(json.dumps({"dry_run": req.dry_run, "selected": total, "topic": req.topic,
                          "range": req.range_text()}), file=out)
        return total
    if req.dry_run or total == 0:
        print(f"{'dry run: ' if req.dry_run else ''}{total} record(s) selected from {req.topic} "
              f"({req.range_text()})", file=out)
        return total
    producer = kafka.producer(cfg, f"mailgate-replay-{cfg.node_name}")
    await producer.start()
    try:
        audit = ReplayRequested(occurred_at=now_ms(), node=cfg.node_name, operator=operator(), topic=req.topic,
                                range=req.range_text(), message_id=req.message_id, reason=req.reason,
                                force_redeliver=req.force_redeliver, records=total)
        await producer.send_and_wait(topics.EVENTS, encode(audit), key=(req.message_id or "replay").encode())
        progress, done, pending = _Progress(total, err), 0, []
        async for rec, e in read_topic(cfg, req.topic, **scan):  # ends at the end as of now: not our own writes
            if (rec.partition, rec.offset) not in chosen:
                continue
            topic, key, value = reinjection(req, e, rec.value, now_ms())
            pending.append(await producer.send(topic, value, key=key.encode()))
            done += 1
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
            progress.tick(done)
        await asyncio.gather(*pending)
        progress.tick(done)
    finally:
        await producer.stop()
    print(f"replayed {done} record(s) from {req.topic} ({req.range_text()})", file=out)
    return done
