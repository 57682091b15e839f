"""Is a Backup MX's primary server up? A TCP connect to its SMTP port, cached for a few seconds.

Reads: the gateway's `primary_addresses` and `primary_port`. Emits: True when any primary address accepts a TCP
connection within the timeout, for `defer_while_primary_up` (ingress answers 451 4.7.1 at RCPT while it is up).
Concurrent callers share one probe; the answer is reused for `cache_s` seconds, so RCPT never waits on it often.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from mailgate.core.config import InboundGateway

log = logging.getLogger("mailgate.ingress.probe")

PROBE_CACHE_S = 5.0
"""How long one probe's answer is reused."""

PROBE_TIMEOUT_S = 2.0
"""Longest wait for one TCP connect."""

MAX_PROBED_HOSTS = 4
"""Addresses of a range or block probed (in order); the primary is up if any of them answers."""


async def tcp_open(host: str, port: int, timeout_s: float) -> bool:
    """Whether `host:port` accepts a TCP connection within `timeout_s` (closed again at once)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class PrimaryProbe:
    def __init__(self, cache_s: float = PROBE_CACHE_S, timeout_s: float = PROBE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cache_s = cache_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.probes = 0
        """TCP probes made (for tests and metrics)."""
        self._answers: dict[str, tuple[float, bool]] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}

    async def is_up(self, gw: InboundGateway) -> bool:
        cached = self._answers.get(gw.name)
        if cached is not None and self.clock() - cached[0] < self.cache_s:
            return cached[1]
        task = self._inflight.get(gw.name)
        if task is None:
            task = asyncio.create_task(self._probe(gw))
            self._inflight[gw.name] = task
            task.add_done_callback(lambda _t: self._inflight.pop(gw.name, None))
        return await asyncio.shield(task)

    async def _probe(self, gw: InboundGateway) -> bool:
        self.probes += 1
        up = False
        for host in gw.primary_hosts()[:MAX_PROBED_HOSTS]:
            if await tcp_open(host, gw.primary_port, self.timeout_s):
                up = True
                break
        previous = self._answers.get(gw.name)
        if previous is None or previous[1] != up:
            log.info("primary of %s is %s", gw.name, "up" if up else "down")
        self._answers[gw.name] = (self.clock(), up)
        return up

    async def aclose(self) -> None:
        tasks = list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
