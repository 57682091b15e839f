"""Egress's delivery metrics, counted from the records it appended (and Kafka acknowledged) for one routed record.

Reads: the Outputs of one delivery (their `mail.events` copies: DeliveryAttempted, DuplicateSuppressed and the
recipient outcomes). Emits: `mailgate_egress_attempts` by gateway and result (an attempt's replies classified by
`Reply`: any transient one makes it deferred, else any permanent one bounced, else delivered; no reply at all is
an error), `mailgate_egress_recipients` by outcome, `mailgate_egress_duplicates_suppressed` and the delivery
latency. The metrics themselves are defined with every stage's in `mailgate/core/metrics.py`.
"""
from __future__ import annotations

from collections.abc import Iterable

from mailgate.core import topics
from mailgate.core.metrics import (EGRESS_ATTEMPTS, EGRESS_DELIVERY_SECONDS, EGRESS_DUPLICATES, EGRESS_RECIPIENTS,
                                   RECIPIENT_OUTCOMES, appended_events)
from mailgate.mail.smtp_reply import Reply
from schemas import DeliveryAttempted, DuplicateSuppressed, MessageDelivered


def attempt_result(attempt) -> str:
    """The result class of one DeliveryAttempted: error, deferred, bounced or delivered (worst reply wins)."""
    replies = [Reply(r.reply.code, r.reply.enhanced_code, r.reply.text) for r in attempt.results]
    if not replies:
        return "error"
    if any(r.is_transient() for r in replies):
        return "deferred"
    if any(r.is_permanent() for r in replies):
        return "bounced"
    return "delivered"


def observe_egress(outputs: Iterable) -> None:
    """Count what egress appended (and Kafka acknowledged) for one routed record."""
    for record in appended_events(o for o in outputs if o.topic == topics.EVENTS):
        if isinstance(record, DeliveryAttempted):
            EGRESS_ATTEMPTS.labels(record.gateway or "none", attempt_result(record)).inc()
        elif isinstance(record, DuplicateSuppressed):
            EGRESS_DUPLICATES.inc(len(record.recipients))
        elif type(record) in RECIPIENT_OUTCOMES:
            EGRESS_RECIPIENTS.labels(RECIPIENT_OUTCOMES[type(record)]).inc(len(record.recipients))
            if isinstance(record, MessageDelivered) and record.received_at:
                EGRESS_DELIVERY_SECONDS.observe(max(record.occurred_at - record.received_at, 0) / 1000)
