"""Per-gateway circuit breaker: stop sending to a gateway that keeps failing, then probe it with one attempt.

Reads: the outcome of each connection or delivery attempt, reported by the engine (`record_success`,
`record_failure` for a connect failure or a 4xx). Emits: `is_usable(name)` for the engine's choice among
candidates, and `state(name)` for metrics. In memory, per egress process; one asyncio thread, so no locks.

A gateway goes down after `failure_threshold` consecutive failures and stays down for `down_for_s` seconds. Then
exactly one caller gets `is_usable() == True`: the probe. Its success brings the gateway up; its failure keeps it
down for another `down_for_s`. A probe that never reports (its task was cancelled) is replaced by a new one after
a further `down_for_s`, so a gateway cannot stay down forever. Failures reported while already down (sessions
started before it went down) do not push the deadline back.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Status = Literal["up", "down", "probing"]


@dataclass(frozen=True)
class HealthState:
    """One gateway's health, for metrics and logs."""

    status: Status
    """up: usable; down: skipped until `down_until`; probing: one attempt in flight decides."""
    consecutive_failures: int
    """Failures since the last success."""
    down_until: float | None
    """Clock reading at which a probe is allowed (down), or a stuck probe is replaced (probing); None when up."""


@dataclass
class _Entry:
    failures: int = 0
    down_until: float | None = None
    probing: bool = False


class GatewayHealth:
    """Consecutive-failure circuit breaker keyed by gateway name. Unknown names are up."""

    def __init__(self, failure_threshold: int = 3, down_for_s: float = 60,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if down_for_s <= 0:
            raise ValueError("down_for_s must be positive")
        self.failure_threshold = failure_threshold
        self.down_for_s = down_for_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def record_success(self, name: str) -> None:
        """An attempt through `name` worked: the gateway is up and its failure count is cleared."""
        self._entries.pop(name, None)

    def record_failure(self, name: str) -> None:
        """An attempt through `name` failed to connect or got a 4xx."""
        entry = self._entries.setdefault(name, _Entry())
        entry.failures += 1
        if entry.probing:
            entry.probing = False
            entry.down_until = self._clock() + self.down_for_s
        elif entry.down_until is None and entry.failures >= self.failure_threshold:
            entry.down_until = self._clock() + self.down_for_s

    def is_usable(self, name: str) -> bool:
        """Whether to send through `name` now. After the down period, True once (the probe), then False until the
        probe's outcome is recorded."""
        entry = self._entries.get(name)
        if entry is None or entry.down_until is None:
            return True
        now = self._clock()
        if now < entry.down_until:
            return False
        entry.probing = True
        entry.down_until = now + self.down_for_s
        return True

    def state(self, name: str) -> HealthState:
        """A snapshot of `name`'s health."""
        entry = self._entries.get(name)
        if entry is None:
            return HealthState("up", 0, None)
        if entry.down_until is None:
            return HealthState("up", entry.failures, None)
        return HealthState("probing" if entry.probing else "down", entry.failures, entry.down_until)


__all__ = ["GatewayHealth", "HealthState", "Status"]
