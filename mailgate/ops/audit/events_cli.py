"""`mailgate events`: a filterable view of the audit log, once or following it.

Reads: `mail.events` from a start time (ISO 8601, or relative: `90s`, `10m`, `2h`, `3d` ago) or the beginning.
Emits: one line (or JSON object) per event that passes the filters — event types, a domain, a message id.
A record that does not decode is always shown, as UNDECODABLE with its partition and offset; it never stops the view.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from mailgate.core import topics
from mailgate.ops.audit.reader import Undecodable, describe, json_of, read_topic
from mailgate.core.config import Config
from schemas import event_name

_ADDRESS_FIELDS = ("mail_from", "rcpt_to", "recipients", "recipient")


def _domains(e) -> set[str]:
    out = set()
    for f in _ADDRESS_FIELDS:
        v = getattr(e, f, None)
        for a in ([v] if isinstance(v, str) else v or []):
            if "@" in a:
                out.add(a.rsplit("@", 1)[1].lower().rstrip(">"))
    return out


@dataclass
class EventFilter:
    """Which events to show. A domain matches an event naming an address there, and every later event of the same
    message (a classification or an attempt names no sender)."""

    types: set[str] = field(default_factory=set)
    domain: str | None = None
    message_id: str | None = None
    _messages: set[str] = field(default_factory=set)

    def matches(self, e) -> bool:
        if isinstance(e, Undecodable):
            return True
        if self.types and event_name(e) not in self.types:
            return False
        mid = getattr(e, "message_id", None)
        if self.message_id and mid != self.message_id:
            return False
        if self.domain:
            if self.domain.lower() in _domains(e):
                if mid:
                    self._messages.add(mid)
                return True
            return mid is not None and mid in self._messages
        return True


async def show_events(cfg: Config, flt: EventFilter, since_ms: int | None = None, follow: bool = False,
                      as_json: bool = False, out=sys.stdout) -> int:
    """Print the matching events; the number shown (undecodable records included)."""
    shown = 0
    async for _, e in read_topic(cfg, topics.EVENTS, since_ms=since_ms, follow=follow):
        if since_ms is not None and not isinstance(e, Undecodable) and e.occurred_at < since_ms:
            continue
        if flt.matches(e):
            print(json.dumps(json_of(e)) if as_json else describe(e, with_id=True), file=out, flush=follow)
            shown += 1
    return shown
