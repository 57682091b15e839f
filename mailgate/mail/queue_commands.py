"""Queue control state: the fold of `mail.control` into what egress must do with a message before attempting it.

Reads: QueueCommandIssued, DestinationSuspended and DestinationResumed records (in log order). Emits: answers —
the operator's standing order for a message (hold, delete, bounce), the suspension covering a routed message, and
whether a waiting record is due now because of a command (flush, delete, bounce). Pure: no I/O here; egress follows
the topic and the `mailgate destination list` command reads it, both through this fold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import event_name

MESSAGE_COMMANDS = ("hold", "release", "delete", "bounce", "flush")
DESTINATION_KINDS = ("inbound", "outbound", "domain")
"""inbound: an inbound gateway's primary server (route kind primary); outbound: an outbound gateway (route kind
gateway, the route's destination); domain: every recipient domain of that name."""
STANDING = frozenset({"hold", "delete", "bounce"})
"""Orders that stay on a message until another command replaces them (release ends a hold)."""
FINAL = frozenset({"delete", "bounce"})
"""Orders no later command replaces."""


def message_key(message_id: str) -> str:
    return f"message/{message_id}"


def destination_key(kind: str, name: str) -> str:
    return f"destination/{kind}/{name.lower() if kind == 'domain' else name}"


def flush_key(kind: str, name: str) -> str:
    return f"flush/{kind}/{name.lower() if kind == 'domain' else name}"


def destinations_of(routed: Any) -> list[tuple[str, str]]:
    """The (kind, name) pairs a routed message goes to: its gateway or primary, and each recipient domain."""
    kind = "inbound" if routed.route.kind == "primary" else "outbound"
    out = [(kind, routed.route.destination)]
    for r in routed.recipients:
        domain = r.rsplit("@", 1)[-1].lower().rstrip(">")
        if ("domain", domain) not in out:
            out.append(("domain", domain))
    return out


@dataclass
class QueueControlState:
    """The latest command per message and per destination."""

    orders: dict[str, Any] = field(default_factory=dict)
    """message id -> its latest QueueCommandIssued other than flush."""
    suspensions: dict[str, Any] = field(default_factory=dict)
    """destination/<kind>/<name> -> DestinationSuspended (removed by DestinationResumed)."""
    flushes: dict[str, Any] = field(default_factory=dict)
    """message/<id> or flush/<kind>/<name> -> the latest flush of that message or destination."""

    def apply(self, e: Any) -> bool:
        """One mail.control record; True when it is a command (the state may have changed)."""
        name = event_name(e)
        if name == "QueueCommandIssued":
            if e.message_id is not None and e.command == "flush":
                self.flushes[message_key(e.message_id)] = e
            elif e.message_id is not None:
                before = self.orders.get(e.message_id)
                if before is None or before.command not in FINAL:
                    self.orders[e.message_id] = e  # a delete or bounce is final: nothing after it undoes it
            elif e.destination_kind and e.destination_name:
                self.flushes[flush_key(e.destination_kind, e.destination_name)] = e
            return True
        if name == "DestinationSuspended":
            self.suspensions[destination_key(e.kind, e.name)] = e
            return True
        if name == "DestinationResumed":
            self.suspensions.pop(destination_key(e.kind, e.name), None)
            return True
        return False

    def order(self, message_id: str) -> Any | None:
        """The standing order (hold, delete, bounce) on a message, or None."""
        o = self.orders.get(message_id)
        return o if o is not None and o.command in STANDING else None

    def suspension(self, routed: Any, now_ms: int) -> Any | None:
        """The suspension in force now over any of the message's destinations, or None."""
        for kind, name in destinations_of(routed):
            s = self.suspensions.get(destination_key(kind, name))
            if s is not None and (s.until is None or now_ms < s.until):
                return s
        return None

    def next_expiry(self, now_ms: int) -> int | None:
        """The earliest `until` still ahead: when a suspension ends by itself."""
        ahead = [s.until for s in self.suspensions.values() if s.until is not None and s.until > now_ms]
        return min(ahead) if ahead else None

    def urgent(self, routed: Any) -> bool:
        """Due now whatever its not_before: a delete or bounce, or a flush issued after this record was written."""
        o = self.orders.get(routed.message_id)
        if o is not None and o.command in FINAL:
            return True
        keys = [message_key(routed.message_id)] + [flush_key(k, n) for k, n in destinations_of(routed)]
        for key in keys:
            f = self.flushes.get(key)
            if f is not None and f.occurred_at >= routed.occurred_at:
                return True
        return False
