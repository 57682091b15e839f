"""Postscreen's pre-greet test: does the client wait for the end of a multi-line greeting before it speaks?

Reads: `ingress.pregreet` (wait, pass TTL, cache size) and, per connection, the listener's action. Emits: the
greeting's first line (`220-<hostname> ESMTP`, written by the session before its real `220 ` line) and whether the
client sent anything within `greet_wait_s` of it. A bot that does not read replies speaks at once; a real MTA waits
for the last line. A client that passed is remembered for `pass_ttl_s` (at most `cache_entries` clients, per
ingress process) and is greeted at once next time; one that failed is tested again next time (as postscreen does).
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from cachetools import TTLCache

from mailgate.core.config import PregreetConfig


class Pregreet:
    def __init__(self, cfg: PregreetConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.passed: TTLCache = TTLCache(maxsize=cfg.cache_entries, ttl=cfg.pass_ttl_s, timer=clock)

    def needed(self, action: str, client: str) -> bool:
        return action != "off" and client not in self.passed

    @staticmethod
    def teaser(hostname: str) -> bytes:
        return f"220-{hostname} ESMTP\r\n".encode()

    async def spoke_early(self, talked: asyncio.Event) -> bool:
        """Wait `greet_wait_s` for `talked` (set when the client's first bytes arrive): True if it spoke."""
        try:
            await asyncio.wait_for(talked.wait(), self.cfg.greet_wait_s)
        except asyncio.TimeoutError:
            return False
        return True

    def remember_pass(self, client: str) -> None:
        self.passed[client] = True
