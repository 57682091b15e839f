"""`mailgate queue`: what is waiting for delivery, per destination and retry tier (like Postfix's qshape).

Reads: `mail.events` from the beginning (a materialized view rebuilt on each call). A message's recipients are
waiting from its MessageRouted until a terminal event (MessageDelivered, MessageBounced, MessageExpired,
MessageDiscarded) or DuplicateSuppressed names them; DeliveryDeferred moves them to its retry tier.
Emits: a table of messages, recipients and oldest age per (destination, tier), or JSON rows.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from mailgate.core import topics
from mailgate.ops.audit.reader import Undecodable, read_topic
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from schemas import TERMINAL_EVENTS, event_name

EARLY_MAX = 10_000
"""Messages whose outcome came before their MessageRouted, remembered at most (the oldest are forgotten)."""

ACTIVE = "active"
"""Tier of a message routed and not yet deferred (it is in mail.outbound)."""


@dataclass
class Waiting:
    """One message with recipients still to deliver."""

    destination: str
    tier: str
    received_at: int
    recipients: set[str] = field(default_factory=set)
    reason: str = ""


class QueueView:
    """The fold of mail.events into the set of waiting messages; feed events in log order per message."""

    def __init__(self) -> None:
        self.waiting: dict[str, Waiting] = {}
        self.early: dict[str, dict[str, int]] = {}
        """Outcomes logged before their MessageRouted (the processor's copy can land after egress's outcome):
        recipient -> when it happened, until that MessageRouted comes."""

    def apply(self, e) -> None:
        if isinstance(e, Undecodable):
            return
        name, mid = event_name(e), getattr(e, "message_id", None)
        if mid is None:
            return
        if name == "MessageRouted":
            done = self.early.pop(mid, {})
            recipients = {r for r in e.recipients if done.get(r, -1) < e.occurred_at}
            if not recipients:
                return
            w = self.waiting.get(mid)
            tier = ACTIVE if e.retry_tier < 0 else f"retry tier {e.retry_tier}"  # -1: before the first attempt
            if w is None:
                self.waiting[mid] = Waiting(e.route.destination or "unrouted", tier, e.received_at, recipients)
            else:
                w.recipients |= recipients
        elif name == "DeliveryDeferred" and mid in self.waiting:
            w = self.waiting[mid]
            w.tier = e.retry_topic.removeprefix("mail.")
            w.reason = e.reason
        elif name == "MessageParked" and mid in self.waiting:  # set aside by queue control (mail.hold)
            w = self.waiting[mid]
            w.tier = "held" if e.cause == "held" else "suspended"
            w.reason = f"{e.cause} ({e.destination})"
        elif name in TERMINAL_EVENTS or name == "DuplicateSuppressed":
            w = self.waiting.get(mid)
            if w is None:
                for r in getattr(e, "recipients", None) or ():
                    self.early.setdefault(mid, {})[r] = e.occurred_at
                if len(self.early) > EARLY_MAX:  # bounded: a MessageRouted comes within moments, or never (retention)
                    del self.early[next(iter(self.early))]
                return
            w.recipients -= set(getattr(e, "recipients", None) or w.recipients)
            if not w.recipients:
                del self.waiting[mid]

    def shape(self, now: int) -> list[dict]:
        """One row per (destination, tier): messages, recipients, oldest age in seconds; biggest first."""
        rows: dict[tuple[str, str], dict] = {}
        for mid, w in self.waiting.items():
            row = rows.setdefault((w.destination, w.tier), {
                "destination": w.destination, "tier": w.tier, "messages": 0, "recipients": 0,
                "oldest_age_s": 0, "oldest_message_id": mid, "last_reason": w.reason})
            row["messages"] += 1
            row["recipients"] += len(w.recipients)
            age = max(0, (now - w.received_at) // 1000)
            if age >= row["oldest_age_s"]:
                row["oldest_age_s"], row["oldest_message_id"], row["last_reason"] = age, mid, w.reason
        return sorted(rows.values(), key=lambda r: (-r["messages"], r["destination"], r["tier"]))


def render(rows: list[dict]) -> str:
    if not rows:
        return "queue is empty"
    head = f"{'DESTINATION':24} {'TIER':16} {'MSGS':>6} {'RCPTS':>6} {'OLDEST':>8}  OLDEST MESSAGE / LAST REASON"
    lines = [head]
    for r in rows:
        lines.append(f"{r['destination']:24} {r['tier']:16} {r['messages']:>6} {r['recipients']:>6} "
                     f"{_age(r['oldest_age_s']):>8}  {r['oldest_message_id']} {r['last_reason']}".rstrip())
    lines.append(f"{'TOTAL':24} {'':16} {sum(r['messages'] for r in rows):>6} "
                 f"{sum(r['recipients'] for r in rows):>6}")
    return "\n".join(lines)


def _age(s: int) -> str:
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


async def build(cfg: Config) -> QueueView:
    view = QueueView()
    async for _, e in read_topic(cfg, topics.EVENTS):
        view.apply(e)
    return view


async def show_queue(cfg: Config, as_json: bool = False, out=sys.stdout) -> int:
    rows = (await build(cfg)).shape(now_ms())
    print(json.dumps(rows) if as_json else render(rows), file=out)
    return 0
