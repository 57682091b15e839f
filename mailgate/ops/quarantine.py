"""Operator commands for quarantined spam: `mailgate quarantine list | show <id> | release <id> | delete <id>`.

Reads: `mail.quarantine` (MessageQuarantined with the MessageRouted to deliver on release) and `mail.events` (a
QuarantineReleased or a MessageDiscarded with reason "quarantine_delete" takes a message out of the quarantine),
both read from the beginning to the current end with `mailgate.core.topic_reader`. Emits: on release, the stored
MessageRouted (times refreshed) to `mail.outbound`, then QuarantineReleased and the MessageRouted's audit copy to
`mail.events`; on delete, MessageDiscarded(reason="quarantine_delete") to `mail.events`. The outbound record is written before the
event, so a crash between the two can at worst lead to a second release, whose duplicate egress suppresses.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import sys
from datetime import datetime, timezone

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import Undecodable, read_topic
from mailgate.mail.outputs import audit
from schemas import MessageDiscarded, MessageQuarantined, QuarantineReleased, decode, encode

RESOLVED_DISCARD_REASON = "quarantine_delete"


async def _events(cfg: Config, topic: str) -> list:
    """Every decodable record of `topic`, from the beginning to its end at the time of the call."""
    return [e async for _, e in read_topic(cfg, topic, client_id="mailgate-quarantine")
            if not isinstance(e, Undecodable)]


def _resolved(events: list) -> set[str]:
    done = set()
    for e in events:
        if isinstance(e, QuarantineReleased) or (isinstance(e, MessageDiscarded)
                                                 and e.reason == RESOLVED_DISCARD_REASON):
            done.add(e.message_id)
    return done


async def held(cfg: Config) -> dict:
    """The messages in quarantine now: message id → MessageQuarantined (with `routed`), oldest first."""
    records = [r for r in await _events(cfg, topics.QUARANTINE) if isinstance(r, MessageQuarantined)]
    done = _resolved(await _events(cfg, topics.EVENTS))
    return {r.message_id: r for r in sorted(records, key=lambda r: r.occurred_at) if r.message_id not in done}


def _header(headers: str, name: str) -> str:
    want = name.lower() + ":"
    for line in headers.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        if line.lower().startswith(want):
            return line[len(want):].strip()
    return ""


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _as_dict(q) -> dict:
    routed = decode(q.routed)
    return {"message_id": q.message_id, "held_at": q.occurred_at, "level": q.level, "score": q.total_score,
            "from": _header(q.headers, "From"), "subject": _header(q.headers, "Subject"),
            "mail_from": routed.mail_from, "recipients": list(routed.recipients),
            "destination": routed.route.destination}


async def cmd_list(cfg: Config, as_json: bool = False) -> int:
    messages = await held(cfg)
    if as_json:
        print(json.dumps([_as_dict(q) for q in messages.values()]))
        return 0
    for mid, q in messages.items():
        print(f"{mid}  {_when(q.occurred_at)}  {q.level:6} {q.total_score:7.1f}  "
              f"from={_header(q.headers, 'From')!r} subject={_header(q.headers, 'Subject')!r}")
    print(f"{len(messages)} message(s) in quarantine")
    return 0


async def _one(cfg: Config, message_id: str):
    q = (await held(cfg)).get(message_id)
    if q is None:
        print(f"{message_id} is not in quarantine (never held, or already released or deleted)")
    return q


async def cmd_show(cfg: Config, message_id: str, as_json: bool = False) -> int:
    q = await _one(cfg, message_id)
    if q is None:
        return 1
    if as_json:
        print(json.dumps({**_as_dict(q), "headers": q.headers}))
        return 0
    routed = decode(q.routed)
    print(f"message {message_id}: level {q.level}, score {q.total_score:.1f}, held since {_when(q.occurred_at)}")
    print(f"envelope: from <{routed.mail_from}> to {', '.join(routed.recipients)}; route {routed.route.destination}")
    print(q.headers, end="")
    return 0


async def _send(cfg: Config, records: list[tuple[str, str, object]]) -> None:
    producer = kafka.producer(cfg, "mailgate-quarantine")
    await producer.start()
    try:
        for topic, key, record in records:
            await producer.send_and_wait(topic, key=key.encode(), value=encode(record))
    finally:
        await producer.stop()


async def cmd_release(cfg: Config, message_id: str, operator: str | None = None) -> int:
    q = await _one(cfg, message_id)
    if q is None:
        return 1
    now = now_ms()
    routed = decode(q.routed)
    lifetime_ms = routed.expires_at - routed.received_at
    routed = dataclasses.replace(routed, occurred_at=now, node=cfg.node_name, not_before=now,
                                 expires_at=max(routed.expires_at, now + lifetime_ms))
    released = QuarantineReleased(message_id=message_id, occurred_at=now, node=cfg.node_name,
                                  operator=operator or getpass.getuser())
    copy = audit(routed)
    await _send(cfg, [(topics.OUTBOUND, routed.route.destination or "unrouted", routed),
                      (topics.EVENTS, message_id, released), (copy.topic, copy.key, copy.record)])
    print(f"released {message_id} to {routed.route.destination or 'unrouted'}")
    return 0


async def cmd_delete(cfg: Config, message_id: str, operator: str | None = None) -> int:
    q = await _one(cfg, message_id)
    if q is None:
        return 1
    await _send(cfg, [(topics.EVENTS, message_id, MessageDiscarded(
        message_id=message_id, occurred_at=now_ms(), node=cfg.node_name, reason=RESOLVED_DISCARD_REASON,
        headers=q.headers, operator=operator or getpass.getuser()))])
    print(f"deleted {message_id}")
    return 0


async def run(cfg: Config, action: str, message_id: str | None, operator: str | None = None,
              as_json: bool = False) -> int:
    """One operator command; exit status 0 on success, 1 when the message is not in quarantine, 2 on usage."""
    if action == "list":
        return await cmd_list(cfg, as_json)
    if not message_id:
        print(f"mailgate quarantine: error: {action} needs a message id", file=sys.stderr)
        return 2
    if action == "show":
        return await cmd_show(cfg, message_id, as_json)
    if action == "release":
        return await cmd_release(cfg, message_id, operator)
    return await cmd_delete(cfg, message_id, operator)
