"""Queue control state: the fold of `mail.control` into what egress must do with a message before attempting it.

Reads: QueueCommandIssued, DestinationSuspended and DestinationResumed records (in log order). Emits: answers —
the operator's standing order for a message (hold, delete, bounce), the suspension covering a routed message, and
whether a waiting record is due now because of a command (flush, delete, bounce). Pure: no I/O here; egress follows
the topic and the `mailgate destination list` command reads it, both through this fold.

Bounded: a record whose command is finished is replaced by a tombstone (`finished`), so neither the compacted topic
nor this state grows with every command ever issued. A release or resume, and a flush, are finished a day after
the longest retry tier; a delete or bounce once no copy of its message can be read again (`kafka.mail_retention_s`
and the delivered index's margin after it); a suspension with an end a day after that end. A hold, and a suspension
without an end, last until an operator ends them. Tombstones, and the rewrites below, are conditional: each names
(header `supersedes`) the offset of the record it replaces, and is ignored when its key has a newer record (an
operator's command written meanwhile). As compaction would keep that ignored record and drop the newer one, the newer
one is then written again (`rewrites`), as is a standing order that an earlier release let a later record of the
same key hide (a release after a delete, a flush after a hold: compaction would keep only the later one).
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


def message_flush_key(message_id: str) -> str:
    """A message's flush: a key of its own, so that compaction never drops a standing order on the message for it
    (earlier releases keyed it `message/<id>`)."""
    return f"flush/message/{message_id}"


SUPERSEDES = "supersedes"
"""Header of a conditional record (tombstone or rewrite): the offset of the record of its key it replaces."""
DAY_MS = 86_400_000


def supersedes(record: Any) -> int | None:
    """The `supersedes` header of a Kafka record, or None for an ordinary record."""
    for name, value in getattr(record, "headers", None) or ():
        if name == SUPERSEDES:
            return int(value)
    return None


@dataclass(frozen=True)
class Retention:
    """How long finished commands are kept in mail.control, from the configuration."""

    flush_ms: int
    """A flush, release or resume: a day after the longest retry tier (every record it could affect is due)."""
    final_ms: int
    """A delete or bounce: while a copy of its message can still be read (mail retention and the index margin)."""

    @classmethod
    def of(cls, cfg: Any) -> "Retention":
        return cls(flush_ms=max(cfg.delivery.retry_schedule_s) * 1000 + DAY_MS,
                   final_ms=(cfg.kafka.mail_retention_s + cfg.delivery.delivered_index_margin_s) * 1000)


def _same(a: Any, b: Any) -> bool:
    """The same command (a rewrite carries the very record it restates)."""
    return a is b or (type(a) is type(b) and a == b)


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
    latest: dict[str, tuple[int, Any]] = field(default_factory=dict)
    """Kafka key -> (offset, event) of the latest record of that key applied."""
    stale: dict[str, Any] = field(default_factory=dict)
    """Kafka key -> its latest event, when a conditional record after it was ignored: to be written again."""

    def apply_record(self, key: str | None, offset: int, e: Any, supersedes: int | None = None) -> bool:
        """One mail.control record in log order: `e` None for a tombstone, `supersedes` from its header. True when
        the state may have changed (a command, or a tombstone that removed one)."""
        if key is None:
            return e is not None and self.apply(e)
        current = self.latest.get(key)
        if supersedes is not None and current is not None and current[0] > supersedes:
            if e is None or not _same(e, current[1]):
                self.stale[key] = current[1]  # an operator's newer record won the race: it must be written again
            return False
        self.stale.pop(key, None)
        if e is None:
            self.latest.pop(key, None)
            return current is not None and self._unset(current[1])
        self.latest[key] = (offset, e)
        return self.apply(e)

    def _unset(self, e: Any) -> bool:
        """Forget what `e` set, unless a later record of another key replaced it."""
        name = event_name(e)
        if name == "QueueCommandIssued" and e.message_id is not None:
            flush = e.command == "flush"
            table, k = (self.flushes, message_key(e.message_id)) if flush else (self.orders, e.message_id)
        elif name == "QueueCommandIssued":
            table, k = self.flushes, flush_key(e.destination_kind or "", e.destination_name or "")
        elif name == "DestinationSuspended":
            table, k = self.suspensions, destination_key(e.kind, e.name)
        else:
            return False
        if _same(table.get(k), e):
            del table[k]
            return True
        return False

    def finished(self, now_ms: int, keep: Retention) -> list[tuple[str, int]]:
        """(key, offset) of each latest record whose command is over: to be replaced by a tombstone."""
        out = []
        for key, (offset, e) in self.latest.items():
            end = self._end(e, keep)
            if end is not None and end <= now_ms and key not in self.stale and not self._hides_order(key, e):
                out.append((key, offset))
        return out

    def rewrites(self) -> list[tuple[str, int, Any]]:
        """(key, offset it supersedes, event) of each record to write again: a newer record that a conditional one
        raced with, and a standing order that a later record of its key would hide from compaction."""
        out = [(key, self.latest[key][0], e) for key, e in self.stale.items() if key in self.latest]
        for key, (offset, e) in self.latest.items():
            if key not in self.stale and self._hides_order(key, e):
                out.append((key, offset, self.orders[e.message_id]))
        return out

    def _hides_order(self, key: str, e: Any) -> bool:
        if event_name(e) != "QueueCommandIssued" or e.message_id is None or key != message_key(e.message_id):
            return False
        o = self.orders.get(e.message_id)
        return o is not None and o.command in STANDING and not _same(o, e)

    @staticmethod
    def _end(e: Any, keep: Retention) -> int | None:
        """When the command `e` is over (ms), or None while an operator has to end it."""
        name = event_name(e)
        if name == "QueueCommandIssued":
            if e.command == "hold":
                return None
            return e.occurred_at + (keep.final_ms if e.command in FINAL else keep.flush_ms)
        if name == "DestinationSuspended":
            return None if e.until is None else e.until + DAY_MS
        if name == "DestinationResumed":
            return e.occurred_at + keep.flush_ms
        return None

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
