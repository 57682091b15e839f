"""Which outbound gateways may carry a message, in the order to try them.

Reads: the configured outbound gateways and a message's sender domain. Emits: candidate gateway names, first
choice first; the rest are the failover order (the delivery engine skips ones its health check marks down).

- A sender domain listed by an enabled `specific_domains` gateway goes through those gateways, in config order,
  then the round-robin pool as fallback (pool in config order; the round-robin turn is not consumed). The match is
  exact and case-insensitive (a trailing dot is ignored): `example.com` does NOT cover `mail.example.com`, which
  must be listed itself, so adding a subdomain never silently changes a route.
- Any other domain goes through the enabled `round_robin` gateways in nginx's smooth weighted round-robin order:
  each call, every gateway's current weight grows by its weight, the largest (first in config order on a tie) is
  picked and loses the total. Over any `sum(weights)` calls each gateway comes first exactly `weight` times, evenly
  interleaved. The other pool members follow, in config order starting after the pick.

Disabled gateways never appear; no enabled gateway gives an empty list. State is in memory, per process.
"""
from __future__ import annotations

from mailgate.core.config import OutboundGateway


def _domain(name: str) -> str:
    return name.strip().lower().rstrip(".")


class GatewaySelector:
    """Smooth weighted round-robin over the pool, with per-sender-domain overrides."""

    def __init__(self, gateways: list[OutboundGateway]) -> None:
        enabled = [g for g in gateways if g.status == "enabled"]
        pool = [g for g in enabled if g.mode == "round_robin"]
        self._pool: list[str] = [g.name for g in pool]
        self._weights: list[int] = [g.weight for g in pool]
        self._total = sum(self._weights)
        self._current: list[int] = [0] * len(pool)
        self._by_domain: dict[str, list[str]] = {}
        for g in enabled:
            if g.mode != "specific_domains":
                continue
            for d in dict.fromkeys(_domain(d) for d in g.sender_domains):
                self._by_domain.setdefault(d, []).append(g.name)

    @property
    def has_pool(self) -> bool:
        """Whether any round-robin gateway is enabled."""
        return bool(self._pool)

    def specific(self, sender_domain: str) -> bool:
        """Whether an enabled specific_domains gateway lists `sender_domain`."""
        return _domain(sender_domain) in self._by_domain

    def candidates(self, sender_domain: str) -> list[str]:
        """Gateway names to try for mail from `sender_domain`, first choice first."""
        specific = self._by_domain.get(_domain(sender_domain))
        if specific is not None:
            return specific + self._pool
        if not self._pool:
            return []
        best = self._next()
        return self._pool[best:] + self._pool[:best]

    def _next(self) -> int:
        """One step of smooth weighted round-robin: the index of this call's first choice."""
        current, weights = self._current, self._weights
        best = 0
        for i in range(len(current)):
            current[i] += weights[i]
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return best


__all__ = ["GatewaySelector"]
