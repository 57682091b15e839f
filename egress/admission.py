"""Admission: how many messages of one destination egress works on at once, and how many SMTP sessions they use.

The one concurrency mechanism of egress, in two steps per destination. A message is *admitted* (the queue manager
then decides what becomes of it) among `admitted_per_destination` slots, a few more than the destination's
sessions, so a message waiting for a session has its decision and write-ahead record made shortly before it can
go, not when it was fetched; its slot is given back once its SMTP session is over. A *session* to a gateway (or
a primary's address) is opened or reused by the session pool (egress/pool.py) only inside one of the
gateway's `concurrency_per_destination` session slots.

Reads: the destination of each routed message, the gateway of each session. Emits: admission and session slots,
and `running()`: one future per message admitted and not finished, which the queue-command follower waits for
before acknowledging a command (a message either finished before the acknowledgement, or was admitted after it
and decided under the new command).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from mailgate.core.config import DeliveryConfig


def admitted_per_destination(cfg: DeliveryConfig) -> int:
    """Messages of one destination admitted at once: its sessions (`concurrency_per_destination`) and a quarter
    more, which wait at the session pool with their decision made, so a session that frees up is taken at once.
    With exactly as many as sessions, the hand-off (the next message's decision and write-ahead record) left 2-3
    of 20 sessions idle against a 50 ms server (docs/performance.md)."""
    n = cfg.concurrency_per_destination
    return n + max(1, n // 4)


class Admission:
    def __init__(self, cfg: DeliveryConfig) -> None:
        self.cfg = cfg
        self._admitted: dict[str, asyncio.Semaphore] = {}
        self._sessions: dict[str, asyncio.Semaphore] = {}
        self._running: set[asyncio.Future] = set()

    def running(self) -> list[asyncio.Future]:
        """The messages admitted now, each a future done when it finishes."""
        return list(self._running)

    @contextlib.asynccontextmanager
    async def admit(self, destination: str) -> AsyncIterator[Callable[[], None]]:
        """Wait for an admission slot of `destination`; the message counts as running inside. The slot can be given
        back before the block ends by calling what it yields (once the message's SMTP session is over: appending
        its outcome needs no slot); the message still counts as running until the block ends."""
        if destination not in self._admitted:
            self._admitted[destination] = asyncio.Semaphore(admitted_per_destination(self.cfg))
        slot = self._admitted[destination]
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

    def session_slot(self, gateway: str) -> asyncio.Semaphore:
        """The session slots of one gateway (or a primary's destination): `concurrency_per_destination`."""
        if gateway not in self._sessions:
            self._sessions[gateway] = asyncio.Semaphore(self.cfg.concurrency_per_destination)
        return self._sessions[gateway]
