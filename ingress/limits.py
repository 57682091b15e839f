"""Per-client limits shared by every SMTP session of one ingress process, with Postfix's meanings.

Reads: `ingress` config (client_connection_count_limit, client_message_rate_limit per client_rate_time_unit_s,
client_limit_exceptions). Emits: allow/refuse answers per connection and per message (MAIL FROM); the session
turns a refusal into `421 4.7.0`. Like Postfix's anvil, the counts are per ingress process (a replica counts its own
clients) and per client IP. Memory stays bounded: a client is forgotten once it has no connection and no message
inside the current time unit.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

from mailgate.core.config import IngressConfig
from mailgate.core.netaddr import AddressSet


class ClientLimits:
    def __init__(self, ic: IngressConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.connection_limit = ic.client_connection_count_limit
        self.rate_limit = ic.client_message_rate_limit
        self.unit_s = ic.client_rate_time_unit_s
        exceptions = ic.client_limit_exceptions
        self.exceptions = AddressSet.parse(ic.relay_networks if exceptions is None else exceptions)
        self.clock = clock
        self.connections: dict[str, int] = {}
        self.messages: dict[str, deque[float]] = {}
        self._swept = clock()

    def exempt(self, client: str) -> bool:
        return client in self.exceptions

    def connect(self, client: str) -> bool:
        """A new connection from `client`: True (counted until `disconnect`) or False (over the limit)."""
        if self.exempt(client):
            return True
        count = self.connections.get(client, 0)
        if self.connection_limit and count >= self.connection_limit:
            return False
        self.connections[client] = count + 1
        return True

    def disconnect(self, client: str) -> None:
        count = self.connections.get(client, 0) - 1
        if count > 0:
            self.connections[client] = count
        else:
            self.connections.pop(client, None)

    def message(self, client: str) -> bool:
        """A MAIL FROM from `client`: True (counted) or False (over its message rate)."""
        if not self.rate_limit or self.exempt(client):
            return True
        now = self.clock()
        self._sweep(now)
        times = self.messages.setdefault(client, deque())
        while times and times[0] <= now - self.unit_s:
            times.popleft()
        if len(times) >= self.rate_limit:
            return False
        times.append(now)
        return True

    def _sweep(self, now: float) -> None:
        """Forget clients with no message inside the time unit (once per unit)."""
        if now - self._swept < self.unit_s:
            return
        self._swept = now
        for client in [c for c, t in self.messages.items() if not t or t[-1] <= now - self.unit_s]:
            del self.messages[client]
