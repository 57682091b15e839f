"""SMTP connection reuse: a bounded pool of open sessions per target, and a concurrency limit per destination.

Reads: Targets. Emits: open SmtpSessions (new or idle ones), each used by one delivery at a time; a session goes
back to the pool while it is healthy and under `messages_per_connection`.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import AsyncIterator

from egress.smtp_session import SmtpSession
from egress.targets import Target
from mailgate.core.config import DeliveryConfig


class SessionPool:
    def __init__(self, cfg: DeliveryConfig) -> None:
        self.cfg = cfg
        self._idle: dict[Target, list[SmtpSession]] = defaultdict(list)
        self._limits: dict[str, asyncio.Semaphore] = {}

    def limit(self, destination: str) -> asyncio.Semaphore:
        if destination not in self._limits:
            self._limits[destination] = asyncio.Semaphore(self.cfg.concurrency_per_destination)
        return self._limits[destination]

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[SmtpSession]:
        """An open session to `target` inside the destination's concurrency limit; DeliveryError if none opens."""
        async with self.limit(target.gateway):
            idle = self._idle[target]
            session = None
            while idle:
                candidate = idle.pop()
                if candidate.usable:
                    session = candidate
                    break
                await candidate.close()
            if session is None:
                session = SmtpSession(target, self.cfg)
                await session.open()
            ok = False
            try:
                yield session
                ok = True
            finally:
                if ok and session.usable:
                    idle.append(session)
                else:
                    await session.close()

    async def close(self) -> None:
        for sessions in self._idle.values():
            for s in sessions:
                await s.close()
        self._idle.clear()
