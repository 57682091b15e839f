"""Exponential back-off: how long to wait before trying again something that failed, doubled after each failure up
to a ceiling (Kafka not answering, `mail.config` not readable yet, a spam scanner down).

Reads: a first and a longest wait. Emits: the wait before the next try (`delay_s`); `wait()` sleeps it and doubles
it, `reset()` starts again from the first after a success.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class Backoff:
    """The waits `first_s`, 2 × `first_s`, 4 × `first_s`, …, never more than `max_s`."""

    def __init__(self, first_s: float, max_s: float,
                 sleep: Callable[[float], Awaitable[object]] | None = None) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.delay_s = first_s
        """The wait before the next try."""
        self._sleep = sleep

    async def wait(self) -> None:
        """Sleep `delay_s` (with the `sleep` given, else asyncio's), and double it for the next failure."""
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        await (self._sleep or asyncio.sleep)(delay)

    def reset(self) -> None:
        """After a success: the next failure waits `first_s` again."""
        self.delay_s = self.first_s
