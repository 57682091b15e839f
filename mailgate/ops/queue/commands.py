"""Queue control commands as events: write them, then wait until every live egress replica has applied them.

Reads: `mail.events` (the queue view, to turn a filter into message ids; and the QueueCommandApplied answers from
its end at the time of the command), `mail.control` (the destinations list), and the `mailgate-egress` consumer
group's members (admin describe_consumer_groups). Emits: QueueCommandIssued per message (hold, release, delete,
bounce, flush) or per destination flush, DestinationSuspended / DestinationResumed — each to `mail.control` (the
state every egress replica follows) and to `mail.events` (the audit trail: `trace` and `mailgate events`).
Bound: `issue` returns once each member of the egress group has acknowledged, or after `timeout_s`, saying which
replicas did not answer; a replica that joins later loads the whole of mail.control before it consumes mail.
"""
from __future__ import annotations

import asyncio
import getpass
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from mailgate.core.ids import new_message_id, now_ms
from mailgate.mail.queue_commands import (DESTINATION_KINDS, MESSAGE_COMMANDS, QueueControlState,
                                          destination_key, flush_key, message_flush_key, message_key,
                                          supersedes)
from schemas import (DestinationResumed, DestinationSuspended, QueueCommandIssued, UndecodableRecord, decode,
                     encode)

EGRESS_GROUP = "mailgate-egress"


class QueueCommandError(ValueError):
    """A command that cannot be issued as given (unknown command or kind, no messages, no reason)."""


@dataclass
class Applied:
    """What a command did: its id, how many messages or destinations it named, and who applied it."""

    command_id: str
    count: int
    replicas: set[str] = field(default_factory=set)
    """Egress replicas (client ids) that acknowledged it."""
    missing: set[str] = field(default_factory=set)
    """Members of the egress group that had not acknowledged it when the wait ended."""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"command_id": self.command_id, "count": self.count, "applied_by": sorted(self.replicas),
                "not_applied_by": sorted(self.missing), "seconds": round(self.seconds, 3)}


async def egress_members(admin: AIOKafkaAdminClient) -> set[str]:
    """Client ids of the egress consumer group's current members (empty when no egress runs)."""
    out = set()
    try:
        responses = await admin.describe_consumer_groups([EGRESS_GROUP])
    except GroupCoordinatorNotAvailableError:  # no group has ever been used on this cluster: no egress runs
        return out
    for resp in responses:
        for group in resp.to_object()["groups"]:
            out |= {m["client_id"] for m in group.get("members", [])}
    return out


async def _event_ends(cfg: Config) -> dict:
    c = kafka.consumer(cfg, "mailgate-queue-control", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        tps = await kafka.assign_whole_topic(c, topics.EVENTS)
        return await c.end_offsets(tps)
    finally:
        await c.stop()


async def _wait_applied(cfg: Config, command_id: str, start: dict, timeout_s: float) -> Applied:
    """Read mail.events from `start` until every egress member acknowledged `command_id` or the time is up."""
    began = time.monotonic()
    result = Applied(command_id, 0)
    c = kafka.consumer(cfg, "mailgate-queue-control", None, isolation_level="read_uncommitted")
    admin = AIOKafkaAdminClient(**kafka._common(cfg, "mailgate-queue-control-admin"))
    await c.start()
    await admin.start()
    try:
        c.assign(list(start))
        for tp, offset in start.items():
            c.seek(tp, offset)
        while True:
            for recs in (await c.getmany(timeout_ms=200, max_records=1000)).values():
                for r in recs:
                    if r.key != command_id.encode():
                        continue
                    try:
                        e = decode(r.value)
                    except UndecodableRecord:
                        continue
                    if type(e).__name__ == "QueueCommandApplied" and e.command_id == command_id:
                        result.replicas.add(e.replica)
            result.missing = await egress_members(admin) - result.replicas
            if not result.missing or time.monotonic() - began > timeout_s:
                break
        result.seconds = time.monotonic() - began
        return result
    finally:
        await admin.close()
        await c.stop()


async def _write(cfg: Config, records: list[tuple[str, str, object]]) -> None:
    p = kafka.producer(cfg, "mailgate-queue-control")
    await p.start()
    try:
        futures = [await p.send(topic, encode(rec), key=key.encode()) for topic, key, rec in records]
        await asyncio.gather(*futures)
    finally:
        await p.stop()


async def _issue(cfg: Config, command_id: str, records: list[tuple[str, str, object]], count: int,
                 timeout_s: float) -> Applied:
    start = await _event_ends(cfg)
    await _write(cfg, records)
    result = await _wait_applied(cfg, command_id, start, timeout_s)
    result.count = count
    return result


def _check(reason: str, operator: str | None) -> str:
    if not reason or not reason.strip():
        raise QueueCommandError("a reason is required (it goes into the audit log)")
    return operator or getpass.getuser()


async def message_command(cfg: Config, command: str, message_ids: list[str], reason: str,
                          operator: str | None = None, timeout_s: float = 60) -> Applied:
    """hold | release | delete | bounce | flush the given messages; waits for every egress replica."""
    if command not in MESSAGE_COMMANDS:
        raise QueueCommandError(f"unknown queue command {command!r}: one of {', '.join(MESSAGE_COMMANDS)}")
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        raise QueueCommandError("no message matched: nothing to do")
    who = _check(reason, operator)
    cid, now = new_message_id(), now_ms()
    records: list[tuple[str, str, object]] = []
    for mid in ids:
        e = QueueCommandIssued(command_id=cid, occurred_at=now, node=cfg.node_name, command=command, message_id=mid,
                               operator=who, reason=reason, message_count=len(ids))
        key = message_flush_key(mid) if command == "flush" else message_key(mid)
        records += [(topics.CONTROL, key, e), (topics.EVENTS, mid, e)]
    return await _issue(cfg, cid, records, len(ids), timeout_s)


async def destination_command(cfg: Config, action: str, kind: str, name: str, reason: str,
                              operator: str | None = None, until_ms: int | None = None,
                              timeout_s: float = 60) -> Applied:
    """suspend | resume | flush one destination (inbound gateway, outbound gateway, recipient domain)."""
    if kind not in DESTINATION_KINDS:
        raise QueueCommandError(f"unknown destination kind {kind!r}: one of {', '.join(DESTINATION_KINDS)}")
    who = _check(reason, operator)
    name = name.lower() if kind == "domain" else name
    cid, now = new_message_id(), now_ms()
    common = dict(command_id=cid, occurred_at=now, node=cfg.node_name, operator=who, reason=reason)
    if action == "suspend":
        key, e = destination_key(kind, name), DestinationSuspended(kind=kind, name=name, until=until_ms, **common)
    elif action == "resume":
        key, e = destination_key(kind, name), DestinationResumed(kind=kind, name=name, **common)
    elif action == "flush":
        key, e = flush_key(kind, name), QueueCommandIssued(command="flush", destination_kind=kind,
                                                           destination_name=name, message_count=1, **common)
    else:
        raise QueueCommandError(f"unknown destination action {action!r}: suspend, resume or flush")
    return await _issue(cfg, cid, [(topics.CONTROL, key, e), (topics.EVENTS, key, e)], 1, timeout_s)


async def control_state(cfg: Config) -> QueueControlState:
    """The fold of mail.control as it is now (what `mailgate destination list` shows)."""
    from mailgate.core.topic_reader import Undecodable, read_topic
    state = QueueControlState()
    async for r, e in read_topic(cfg, topics.CONTROL, client_id="mailgate-queue-control"):
        if r.value is None or not isinstance(e, Undecodable):
            state.apply_record(r.key.decode() if r.key else None, r.offset, None if r.value is None else e,
                               supersedes(r))
    return state


async def select(cfg: Config, destination: str | None = None, domain: str | None = None,
                 tier: str | None = None) -> list[str]:
    """Ids of the messages waiting now that match every given filter (from the queue view of mail.events)."""
    from mailgate.ops.queue.view import build
    view = await build(cfg)
    out = []
    for mid, w in view.waiting.items():
        if destination and w.destination != destination:
            continue
        if domain and not any(r.rsplit("@", 1)[-1].lower() == domain.lower() for r in w.recipients):
            continue
        if tier and w.tier != tier:
            continue
        out.append(mid)
    return out
