"""Queue control in egress: follows `mail.control` and decides, before each attempt, whether a message goes out.

Reads: the compacted `mail.control` topic from its beginning with `core/topic_reader` (group-less: every replica has
the whole state before it consumes mail), then follows it from exactly where that read ended. Emits: for a message an
operator deleted, MessageDiscarded
(reason queue_delete); bounced, MessageBounced and a DSN (through the outcome policy); held, or whose destination is
suspended, the record to `mail.hold` and MessageParked the first time. After applying commands it appends one
QueueCommandApplied per command to `mail.events`, once every message it had admitted to delivery has finished, so a
delivery either finished before the acknowledgement or is admitted after it and honours the command.
Keeps mail.control bounded: once an hour (and after loading it) it writes a tombstone for each finished command
and rewrites the records a tombstone or an earlier release must not hide (`QueueControlState.finished`,
`rewrites`); every replica may, as they are conditional and idempotent.
Runner hooks: `admit` around each message (a slot among `admitted_per_destination`, a few more than the
destination's sessions, taken before the decision, so a waiting message is decided shortly before it can go, not
when it was fetched, and given back when its SMTP session is over), `intercept` before
an attempt, `due_in_ms` / `urgent` when scanning a partition batch, `on_change` to wake partitions.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import Any, AsyncIterator, Awaitable, Callable

from aiokafka import TopicPartition

from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import TopicReader, Undecodable
from mailgate.mail.headers import header_block
from mailgate.mail.outputs import Output, audit
from mailgate.mail.smtp_reply import Reply
from mailgate.mail.queue_commands import SUPERSEDES, QueueControlState, Retention, supersedes
from schemas import MessageDiscarded, MessageParked, QueueCommandApplied

log = logging.getLogger("mailgate.egress.control")

HOLD_RESCAN_MS = 30_000
"""How often a paused mail.hold partition is looked at again without a command (suspensions ending by themselves
are also scheduled exactly)."""
RECENT_ACK_MS = 120_000
"""Commands found while loading the state at start are acknowledged when issued this recently (a command written
while this replica was joining the group still gets its answer)."""
ACK_WAIT_S = 300
"""Longest wait for in-flight batches before acknowledging anyway (the acknowledgement says how long it waited)."""
SWEEP_S = 3600
"""How often finished commands in mail.control are replaced by tombstones (its compaction waits far longer)."""

Emit = Callable[[list[Output]], Awaitable[None]]


def admitted_per_destination(cfg: Config) -> int:
    """Messages of one destination admitted at once: its sessions (`concurrency_per_destination`) and a quarter
    more, which wait at the session pool (egress/pool.py) with their decision made, so a session that frees up is
    taken at once. With exactly as many as sessions, the hand-off (the next message's decision and write-ahead
    record) left 2-3 of 20 sessions idle against a 50 ms server (docs/performance.md)."""
    n = cfg.delivery.concurrency_per_destination
    return n + max(1, n // 4)


def replica_id(cfg: Config) -> str:
    """This process's Kafka client id in the egress group: what the consumer group lists and acks name."""
    return f"mailgate-egress-{cfg.node_name}-{os.getpid()}"


class QueueControl:
    def __init__(self, cfg: Config, emit: Emit) -> None:
        self.cfg = cfg
        self.replica = replica_id(cfg)
        self.state = QueueControlState()
        self.generation = 0
        """Bumped on every change; a batch that saw it change looks at its partition again at once."""
        self.changed_at = 0
        """mail.hold records written before this (ms) are passed over again: delivered if no longer held."""
        self._emit = emit
        self._running: set[asyncio.Future] = set()
        """One future per message admitted to delivery and not finished."""
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._listeners: list[Callable[[], None]] = []
        self._ahead: set[tuple[str, int, int]] = set()
        self._seen: dict[str, int] = {}
        """command id -> records of it applied so far (a command naming many messages writes one record each)."""
        self._reader: TopicReader | None = None
        self._tasks: set[asyncio.Task] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._refresh_ms = cfg.kafka.mail_retention_s * 1000 // 2

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Load the whole state, then follow; returns when this replica knows every command written before."""
        reader = self._reader = TopicReader(self.cfg, topics.CONTROL, f"{self.replica}-control")
        await reader.open()
        await reader.seek("beginning")
        recent = []
        async for item in reader.read_to(await reader.end_offsets()):
            recent += [e for e in self._apply([item]) if e.occurred_at >= now_ms() - RECENT_ACK_MS]
        self._changed()
        self._acknowledge(recent)
        self._seen.clear()  # older commands were answered by the replicas running then
        self._tasks.add(asyncio.create_task(self._follow()))
        self._tasks.add(asyncio.create_task(self._sweeping()))
        log.info("queue control loaded: %d message orders, %d suspended destinations",
                 len(self.state.orders), len(self.state.suspensions))

    def _apply(self, items) -> list:
        """Apply (record, event) pairs to the state; the commands among them (not tombstones and rewrites, which
        restate or end commands already answered)."""
        commands = []
        for r, e in items:
            if r.value is None:
                e = None
            elif isinstance(e, Undecodable):
                log.warning("ignored a record in %s: %s", topics.CONTROL, e.reason)
                continue
            superseded = supersedes(r)
            if self.state.apply_record(r.key.decode() if r.key else None, r.offset, e, superseded) \
                    and e is not None and superseded is None:
                commands.append(e)
        return commands

    async def _sweeping(self) -> None:
        while True:
            try:
                await self.sweep(now_ms())
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the next sweep tries again; mail flows meanwhile
                log.warning("%s sweep failed: %s", topics.CONTROL, err)
            await asyncio.sleep(SWEEP_S)

    async def sweep(self, now: int) -> int:
        """Write a tombstone for each command finished at `now` and rewrite what must not be hidden; how many."""
        out = [Output(topics.CONTROL, key, e, ((SUPERSEDES, str(offset).encode()),))
               for key, offset, e in self.state.rewrites()]
        out += [Output(topics.CONTROL, key, None, ((SUPERSEDES, str(offset).encode()),))
                for key, offset in self.state.finished(now, Retention.of(self.cfg))]
        if out:
            await self._emit(out)
            log.info("%s: %d finished commands removed, %d records written again", topics.CONTROL,
                     sum(o.record is None for o in out), sum(o.record is not None for o in out))
        return len(out)

    async def _follow(self) -> None:
        async for batch in self._reader.batches(timeout_ms=200):
            commands = self._apply(batch)
            if commands:
                for e in {e.command_id: e for e in commands}.values():  # one line per command
                    log.info("queue control: %s by %s (%s)", _describe(e), e.operator, e.reason)
                self._changed()
                self._acknowledge(commands)

    def _changed(self) -> None:
        """The state changed (or a suspension ended): look at waiting and parked mail again."""
        self.generation += 1
        self.changed_at = now_ms()
        for listener in self._listeners:
            listener()
        if self._expiry is not None:
            self._expiry.cancel()
        ends = self.state.next_expiry(now_ms())
        if ends is not None:
            self._expiry = asyncio.get_running_loop().call_later((ends - now_ms()) / 1000 + 0.05, self._changed)

    def _acknowledge(self, commands: list) -> None:
        """Acknowledge each command whose records are all applied, once the messages admitted before (decided under
        the old state) have finished."""
        ids = []
        for e in commands:
            count = self._seen[e.command_id] = self._seen.get(e.command_id, 0) + 1
            if count >= (getattr(e, "message_count", 1) or 1):
                ids.append(e.command_id)
                del self._seen[e.command_id]
        if not ids:
            return
        task = asyncio.create_task(self._ack(ids, list(self._running)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ack(self, ids: list[str], running: list[asyncio.Future]) -> None:
        started = now_ms()
        if running:
            await asyncio.wait(running, timeout=ACK_WAIT_S)
        waited = now_ms() - started
        await self._emit([Output(topics.EVENTS, cid, QueueCommandApplied(
            command_id=cid, occurred_at=now_ms(), node=self.cfg.node_name, replica=self.replica, waited_ms=waited))
            for cid in ids])

    # --- hooks for the runner -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def admit(self, routed) -> AsyncIterator[Callable[[], None]]:
        """Wait for a delivery slot of the message's destination; the message counts as running inside. The slot
        can be given back before the block ends by calling what it yields (once the message's SMTP session is
        over: appending its outcome needs no slot); the message still counts as running until the block ends."""
        if type(routed).__name__ != "MessageRouted":
            yield lambda: None
            return
        key = routed.route.destination or ""
        if key not in self._slots:
            self._slots[key] = asyncio.Semaphore(admitted_per_destination(self.cfg))
        slot = self._slots[key]
        await slot.acquire()
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                slot.release()

        done = asyncio.get_running_loop().create_future()
        self._running.add(done)
        try:
            yield give_back
        finally:
            give_back()
            self._running.discard(done)
            done.set_result(None)

    def due_in_ms(self, tp: TopicPartition, rec, routed, now: int) -> int:
        """How long until this record may be attempted (<= 0: now). A mail.hold record is looked at again after
        each change (and before retention could remove it); others wait for their not_before."""
        if tp.topic == topics.HOLD:
            if rec.timestamp < self.changed_at or rec.timestamp < now - self._refresh_ms:
                return 0
            return HOLD_RESCAN_MS
        return getattr(routed, "not_before", 0) - now

    def urgent(self, routed) -> bool:
        """A command makes this waiting record due now (flush, delete, bounce), or it is parked mail that is to
        expire (`delivery.parked_mail_expires`) and has."""
        if type(routed).__name__ != "MessageRouted":
            return False
        return self.state.urgent(routed) or (self.cfg.delivery.parked_mail_expires and routed.expires_at <= now_ms())

    def take_ahead(self, tp: TopicPartition, offset: int) -> None:
        """This record is handled before records ahead of it; skip it when the partition is read again."""
        self._ahead.add((tp.topic, tp.partition, offset))

    def taken_ahead(self, tp: TopicPartition, offset: int) -> bool:
        """Handled ahead of its turn already. A batch starts at the partition's committed offset, so what lies
        before its first record is forgotten here."""
        return (tp.topic, tp.partition, offset) in self._ahead

    def forget_before(self, tp: TopicPartition, offset: int) -> None:
        """Records before `offset` are committed: no need to remember which were taken ahead."""
        if self._ahead:
            self._ahead = {k for k in self._ahead if (k[0], k[1]) != (tp.topic, tp.partition) or k[2] >= offset}

    async def intercept(self, topic: str, routed, outcome) -> tuple[Any, list[Output] | None]:
        """Before an attempt: (the record to attempt, None), or (it, the outputs that replace the attempt)."""
        now = now_ms()
        mid = routed.message_id
        order = self.state.order(mid)
        if order is not None and order.command == "delete":
            log.info("deleted id=%s by %s", mid, order.operator, extra={"message_id": mid})
            return routed, [audit(MessageDiscarded(
                message_id=mid, occurred_at=now, node=self.cfg.node_name, reason="queue_delete",
                headers=header_block(routed.body or b"").decode("utf-8", "replace"), operator=order.operator))]
        if order is not None and order.command == "bounce":
            log.info("bounced id=%s by %s", mid, order.operator, extra={"message_id": mid})
            return routed, outcome.operator_bounce(routed, order.operator, order.reason, now)
        if order is not None or self.state.suspension(routed, now) is not None:
            if self.cfg.delivery.parked_mail_expires and now >= routed.expires_at:
                why = "queue lifetime exceeded while parked"
                lifetime = [(r, Reply(451, "4.4.7", why)) for r in routed.recipients]
                return routed, outcome.outcome(routed, lifetime, gateway="", host="", attempt=routed.attempt,
                                               now=now, error=why)
        if order is not None:  # hold
            return routed, await self._park(topic, routed, "held", order.command_id, routed.route.destination, now)
        s = self.state.suspension(routed, now)
        if s is not None:
            return routed, await self._park(topic, routed, "destination_suspended", s.command_id,
                                            f"{s.kind}/{s.name}", now)
        if topic == topics.HOLD and not self.cfg.delivery.parked_mail_expires:
            # released or resumed: the time parked does not count against its lifetime
            routed = dataclasses.replace(routed, expires_at=routed.expires_at + max(0, now - routed.occurred_at))
        return routed, None

    async def _park(self, topic: str, routed, cause: str, command_id: str, destination: str, now: int) -> list:
        first = topic != topics.HOLD
        parked = dataclasses.replace(routed, occurred_at=now, node=self.cfg.node_name) if first else routed
        generation = self.generation
        await self._emit([Output(topics.HOLD, routed.route.destination or "unrouted", parked)])
        if self.generation != generation:
            self._changed()  # a command came while it was written: this record must be looked at again
        if not first:
            return []
        log.info("parked id=%s: %s", routed.message_id, cause, extra={"message_id": routed.message_id})
        return [audit(MessageParked(message_id=routed.message_id, occurred_at=now, node=self.cfg.node_name,
                                    recipients=list(routed.recipients), cause=cause, command_id=command_id,
                                    destination=destination))]

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader is not None:
            await self._reader.close()


def _describe(e) -> str:
    name = type(e).__name__
    if name == "QueueCommandIssued":
        what = (f"{e.message_count} message(s), e.g. {e.message_id}" if e.message_id
                else f"{e.destination_kind}/{e.destination_name}")
        return f"{e.command} {what} [{e.command_id}]"
    return f"{name} {e.kind}/{e.name} [{e.command_id}]"
