"""Operator commands for quarantined mail: `mailgate quarantine list | show <id> | release <id> | delete <id>`.
Held spam, and mail the virus scan held (level `virus` or `unscannable`), whose release needs `--confirm-malware`
and is recorded so (`QuarantineReleased.malware_confirmed`, with the operator).

Reads: the tracking store (`mailgate tracker` keeps it; a message is in quarantine while its row says
`quarantine = 'held'`) for which messages are held and their headers, envelope and route. Release also needs the
stored MessageRouted (the body), which only `mail.quarantine` holds: it is read from the time the message was held
(Kafka's offsets for that time), not from the beginning. Without a store (no tracker ever ran, the server is down),
with `--from-log`, or for a message the store does not know yet (the tracker trails the log by its lag), the
commands scan `mail.quarantine` and `mail.events` from the beginning as before, and say so on stderr.
Emits: on release, the stored MessageRouted (times refreshed) to `mail.outbound`, then QuarantineReleased and the
MessageRouted's audit copy to `mail.events`; on delete, MessageDiscarded(reason="quarantine_delete") to
`mail.events`. The outbound record is written before the event, so a crash between the two can at worst lead to a
second release, whose duplicate egress suppresses.
"""
from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import sys
from datetime import datetime, timezone

from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import Undecodable, read_topic
from mailgate.ops.cli import exits
from mailgate.mail.outputs import Output, append_once, audit
from schemas import MessageDiscarded, MessageQuarantined, QuarantineReleased, decode
from processors.routing import split_by_domain

RESOLVED_DISCARD_REASON = "quarantine_delete"
MALWARE_LEVELS = ("virus", "unscannable")
"""Levels of a message the scan step held (processors/virus/policy.py): releasing one needs confirm_malware."""
HELD_SLACK_MS = 60_000
"""Release reads mail.quarantine from this long before the time the store says the message was held."""


@dataclasses.dataclass(frozen=True)
class Held:
    """A message in quarantine, as the tracking store or the topics know it."""

    message_id: str
    occurred_at: int
    """When it was held (the MessageQuarantined's time)."""
    level: str
    total_score: float
    headers: str
    mail_from: str
    recipients: list[str]
    destination: str
    routed: bytes | None = None
    """The encoded MessageRouted to deliver on release; None when read from the store (fetched on release)."""

    @classmethod
    def of_record(cls, q: MessageQuarantined) -> "Held":
        routed = decode(q.routed)
        return cls(q.message_id, q.occurred_at, q.level, q.total_score, q.headers, routed.mail_from,
                   list(routed.recipients), routed.route.destination, q.routed)

    @classmethod
    def of_row(cls, r: dict) -> "Held":
        return cls(r["message_id"], r["quarantined_at"], r["quarantine_level"], r["quarantine_score"],
                   r["quarantine_headers"] or "", r["mail_from"] or "",
                   [a for a in (r["recipients"] or "").split(", ") if a], r["destination"] or "")


async def _events(cfg: Config, topic: str, since_ms: int | None = None) -> list:
    """Every decodable record of `topic` (written at or after `since_ms`), up to its end at the time of the call."""
    return [e async for _, e in read_topic(cfg, topic, client_id="mailgate-quarantine", since_ms=since_ms)
            if not isinstance(e, Undecodable)]


def _resolved(events: list) -> set[str]:
    done = set()
    for e in events:
        if isinstance(e, QuarantineReleased) or (isinstance(e, MessageDiscarded)
                                                 and e.reason == RESOLVED_DISCARD_REASON):
            done.add(e.message_id)
    return done


async def held_from_log(cfg: Config) -> dict[str, Held]:
    """The scan: every MessageQuarantined in mail.quarantine not released or deleted in mail.events."""
    records = [r for r in await _events(cfg, topics.QUARANTINE) if isinstance(r, MessageQuarantined)]
    done = _resolved(await _events(cfg, topics.EVENTS))
    return {r.message_id: Held.of_record(r) for r in sorted(records, key=lambda r: r.occurred_at)
            if r.message_id not in done}


_COLUMNS = ("message_id, quarantine, quarantined_at, quarantine_level, quarantine_score, quarantine_headers, "
            "mail_from, recipients, destination")


def _from_store(cfg: Config, message_id: str | None) -> list[dict] | str:
    """Rows of held messages (or of the one message, held or not); the reason when there is no store."""
    from mailgate.ops.tracking.store import Store, StoreUnavailable
    try:
        store = Store.open(cfg, create=False)
    except StoreUnavailable as err:
        return str(err)
    try:
        if message_id is None:
            return store.rows(f"SELECT {_COLUMNS} FROM messages WHERE quarantine = 'held' "
                              f"ORDER BY quarantined_at, message_id")
        return store.rows(f"SELECT {_COLUMNS} FROM messages WHERE message_id = ?", (message_id,))
    finally:
        store.close()


async def _scan(cfg: Config, why: str) -> dict[str, Held]:
    """The scan, then `why` on stderr (after it, so that a failing scan stays one line of error)."""
    found = await held_from_log(cfg)
    print(f"mailgate: {why}; scanned mail.quarantine and mail.events instead", file=sys.stderr)
    return found


async def held(cfg: Config, from_log: bool = False) -> dict[str, Held]:
    """The messages in quarantine now, oldest first: from the tracking store, else (or `from_log`) the scan."""
    if from_log:
        return await held_from_log(cfg)
    rows = await asyncio.to_thread(_from_store, cfg, None)
    if isinstance(rows, str):
        return await _scan(cfg, rows)
    return {r["message_id"]: Held.of_row(r) for r in rows}


async def find(cfg: Config, message_id: str, from_log: bool = False) -> Held | None:
    """The message if it is in quarantine now. From the store when it knows the message; else the scan (a message
    newer than the tracker's position, or no store)."""
    if from_log:
        return (await held_from_log(cfg)).get(message_id)
    rows = await asyncio.to_thread(_from_store, cfg, message_id)
    if isinstance(rows, str):
        return (await _scan(cfg, rows)).get(message_id)
    if rows:
        return Held.of_row(rows[0]) if rows[0]["quarantine"] == "held" else None
    return (await _scan(cfg, f"{message_id} is not in the tracking store (yet)")).get(message_id)


async def routed_record(cfg: Config, q: Held) -> bytes | None:
    """The encoded MessageRouted to deliver on release: read from mail.quarantine around the time it was held
    (from the beginning if not found there)."""
    if q.routed is not None:
        return q.routed
    for since in (q.occurred_at - HELD_SLACK_MS, None):
        for r in await _events(cfg, topics.QUARANTINE, since_ms=since):
            if isinstance(r, MessageQuarantined) and r.message_id == q.message_id and r.routed:
                return r.routed
    return None


def _header(headers: str, name: str) -> str:
    want = name.lower() + ":"
    for line in headers.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        if line.lower().startswith(want):
            return line[len(want):].strip()
    return ""


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _as_dict(q: Held) -> dict:
    return {"message_id": q.message_id, "held_at": q.occurred_at, "level": q.level, "score": q.total_score,
            "from": _header(q.headers, "From"), "subject": _header(q.headers, "Subject"),
            "mail_from": q.mail_from, "recipients": q.recipients, "destination": q.destination}


async def cmd_list(cfg: Config, as_json: bool = False, from_log: bool = False) -> int:
    messages = await held(cfg, from_log)
    if as_json:
        print(json.dumps([_as_dict(q) for q in messages.values()]))
        return 0
    for mid, q in messages.items():
        print(f"{mid}  {_when(q.occurred_at)}  {q.level:6} {q.total_score:7.1f}  "
              f"from={_header(q.headers, 'From')!r} subject={_header(q.headers, 'Subject')!r}")
    print(f"{len(messages)} message(s) in quarantine")
    return 0


async def _one(cfg: Config, message_id: str, from_log: bool = False) -> Held | None:
    q = await find(cfg, message_id, from_log)
    if q is None:
        print(f"{message_id} is not in quarantine (never held, or already released or deleted)")
    return q


async def cmd_show(cfg: Config, message_id: str, as_json: bool = False, from_log: bool = False) -> int:
    q = await _one(cfg, message_id, from_log)
    if q is None:
        return 1
    if as_json:
        print(json.dumps({**_as_dict(q), "headers": q.headers}))
        return 0
    print(f"message {message_id}: level {q.level}, score {q.total_score:.1f}, held since {_when(q.occurred_at)}")
    print(f"envelope: from <{q.mail_from}> to {', '.join(q.recipients)}; route {q.destination}")
    print(q.headers, end="")
    return 0


class MalwareNotConfirmed(Exception):
    """A release of a message held for malware without the operator's explicit confirmation."""


def check_release(q: Held, confirm_malware: bool) -> None:
    if q.level in MALWARE_LEVELS and not confirm_malware:
        raise MalwareNotConfirmed(f"{q.message_id} is held by the virus scan ({q.level}): releasing it delivers "
                                  "possible malware; confirm with --confirm-malware")


async def cmd_release(cfg: Config, message_id: str, operator: str | None = None, from_log: bool = False,
                      confirm_malware: bool = False) -> int:
    q = await _one(cfg, message_id, from_log)
    if q is None:
        return 1
    try:
        check_release(q, confirm_malware)
    except MalwareNotConfirmed as err:
        print(err)
        return 1
    stored = await routed_record(cfg, q)
    if stored is None:
        print(f"{message_id} is held but its message is no longer in {topics.QUARANTINE} (retention?): not released")
        return 1
    now = now_ms()
    routed = decode(stored)
    lifetime_ms = routed.expires_at - routed.received_at
    routed = dataclasses.replace(routed, occurred_at=now, node=cfg.node_name, not_before=now,
                                 expires_at=max(routed.expires_at, now + lifetime_ms))
    released = QuarantineReleased(message_id=message_id, occurred_at=now, node=cfg.node_name,
                                  operator=operator or getpass.getuser(),
                                  malware_confirmed=q.level in MALWARE_LEVELS)
    parts = split_by_domain(routed)  # a direct route: one record per recipient domain, as the processor writes it
    out = [Output(topics.OUTBOUND, part.route.destination or "unrouted", part) for part in parts]
    out.append(Output(topics.EVENTS, message_id, released))
    out += [audit(part) for part in parts]
    await append_once(cfg, "mailgate-quarantine", out)
    print(f"released {message_id} to {', '.join(p.route.destination or 'unrouted' for p in parts)}")
    return 0


async def cmd_delete(cfg: Config, message_id: str, operator: str | None = None, from_log: bool = False) -> int:
    q = await _one(cfg, message_id, from_log)
    if q is None:
        return 1
    await append_once(cfg, "mailgate-quarantine", [Output(topics.EVENTS, message_id, MessageDiscarded(
        message_id=message_id, occurred_at=now_ms(), node=cfg.node_name, reason=RESOLVED_DISCARD_REASON,
        headers=q.headers, operator=operator or getpass.getuser()))])
    print(f"deleted {message_id}")
    return 0


async def run(cfg: Config, action: str, message_id: str | None, operator: str | None = None,
              as_json: bool = False, from_log: bool = False, confirm_malware: bool = False) -> int:
    """One operator command; exit status 0 on success, 1 when the message is not in quarantine, 2 on usage.
    `from_log`: scan the topics instead of reading the tracking store."""
    if action == "list":
        return await cmd_list(cfg, as_json, from_log)
    if not message_id:
        raise exits.UsageError(f"{action} needs a message id")
    if action == "show":
        return await cmd_show(cfg, message_id, as_json, from_log)
    if action == "release":
        return await cmd_release(cfg, message_id, operator, from_log, confirm_malware)
    return await cmd_delete(cfg, message_id, operator, from_log)
