"""The queue-command follower: every egress replica's copy of the operators' queue commands in `mail.control`.

Reads: the compacted `mail.control` topic from its beginning with `core/topic_reader` (group-less: every replica
has the whole state before it consumes mail), then follows it from exactly where that read ended. Emits: the
state (`QueueControlState`: message orders and destination suspensions) the queue manager (egress/queue_manager.py)
decides by; a change signal (`on_change`, also when a suspension ends by itself) that wakes waiting partitions;
after applying commands, one QueueCommandApplied per command to `mail.events`, once every message admitted before
(egress/admission.py `running`) has finished, so a delivery either finished before the acknowledgement or is
admitted after it and honours the command.
Keeps mail.control bounded: once an hour (and after loading it) it writes a tombstone for each finished command
and rewrites the records a tombstone or an earlier release must not hide (`QueueControlState.finished`,
`rewrites`); every replica may, as they are conditional and idempotent.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from egress.consumer import replica_id
from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import TopicReader, Undecodable
from mailgate.mail.outputs import Output
from mailgate.mail.queue_commands import SUPERSEDES, QueueControlState, Retention, supersedes
from schemas import QueueCommandApplied

log = logging.getLogger("mailgate.egress.control")

RECENT_ACK_MS = 120_000
"""Commands found while loading the state at start are acknowledged when issued this recently (a command written
while this replica was joining the group still gets its answer)."""
ACK_WAIT_S = 300
"""Longest wait for in-flight batches before acknowledging anyway (the acknowledgement says how long it waited)."""
SWEEP_S = 3600
"""How often finished commands in mail.control are replaced by tombstones (its compaction waits far longer)."""

Emit = Callable[[list[Output]], Awaitable[None]]


class QueueCommandFollower:
    def __init__(self, cfg: Config, emit: Emit, running: Callable[[], list[asyncio.Future]] = list) -> None:
        self.cfg = cfg
        self.replica = replica_id(cfg)
        self.state = QueueControlState()
        self.generation = 0
        """Bumped on every change; a batch that saw it change looks at its partition again at once."""
        self.changed_at = 0
        """mail.hold records written before this (ms) are passed over again: delivered if no longer held."""
        self._emit = emit
        self._running = running
        """The messages admitted to delivery and not finished (egress/admission.py)."""
        self._listeners: list[Callable[[], None]] = []
        self._seen: dict[str, int] = {}
        """command id -> records of it applied so far (a command naming many messages writes one record each)."""
        self._reader: TopicReader | None = None
        self._tasks: set[asyncio.Task] = set()
        self._expiry: asyncio.TimerHandle | None = None

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
        self.changed()
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
        if self._reader is None:
            raise RuntimeError("the queue-command follower is not loaded")
        async for batch in self._reader.batches(timeout_ms=200):
            commands = self._apply(batch)
            if commands:
                for e in {e.command_id: e for e in commands}.values():  # one line per command
                    log.info("queue control: %s by %s (%s)", _describe(e), e.operator, e.reason)
                self.changed()
                self._acknowledge(commands)

    def changed(self) -> None:
        """The state changed (or a suspension ended): look at waiting and parked mail again."""
        self.generation += 1
        self.changed_at = now_ms()
        for listener in self._listeners:
            listener()
        if self._expiry is not None:
            self._expiry.cancel()
        ends = self.state.next_expiry(now_ms())
        if ends is not None:
            self._expiry = asyncio.get_running_loop().call_later((ends - now_ms()) / 1000 + 0.05, self.changed)

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
        task = asyncio.create_task(self._ack(ids, self._running()))
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
