"""What a processor policy returns: records to append, each with its topic and key."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mailgate.core import topics


@dataclass(frozen=True)
class Output:
    topic: str
    key: str
    record: Any
    """The event, bytes, or None for a tombstone."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka record headers (mail.control's conditional records say what they supersede)."""


def audit(record: Any) -> Output:
    """The record's copy for the audit log (bodies removed), keyed by message id."""
    fields = {f.name for f in dataclasses.fields(record)}
    copy = record
    if "body" in fields:
        copy = dataclasses.replace(copy, body=None)
    if "routed" in fields:
        copy = dataclasses.replace(copy, routed=None)
    return Output(topics.EVENTS, record.message_id, copy)
