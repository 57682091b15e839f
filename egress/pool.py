"""SMTP connection reuse: a pool of open sessions per target, each taken inside one of its gateway's session slots.

Reads: Targets. Emits: open SmtpSessions (new or idle ones), each used by one delivery at a time; a session goes
back to the pool while it is healthy and under `messages_per_connection`. How many sessions a gateway gets at once
is admission's (egress/admission.py `session_slot`).
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import AsyncIterator

from egress.admission import Admission
from egress.smtp_session import SmtpSession
from egress.targets import Target
from mailgate.core.config import DeliveryConfig


class SessionPool:
    def __init__(self, cfg: DeliveryConfig, admission: Admission | None = None) -> None:
        self.cfg = cfg
        self.admission = admission or Admission(cfg)
        self._idle: dict[Target, list[SmtpSession]] = defaultdict(list)

    @contextlib.asynccontextmanager
    async def session(self, target: Target) -> AsyncIterator[SmtpSession]:
        """An open session to `target` inside one of its gateway's session slots; DeliveryError if none opens."""
        async with self.admission.session_slot(target.gateway):
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
