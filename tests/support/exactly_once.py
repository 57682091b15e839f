"""What "delivered once" means in the tests, in one place (docs/reliability.md, "Delivery: what holds").

Reads: the events of `mail.events` and the copies a downstream SMTP server received, as (message id, recipient).
Emits: the list of violations (empty when the rule holds), each a readable sentence.

The rule: every (message, recipient) has exactly one `MessageDelivered` naming it and exactly one copy at the
downstream, except that each extra one must be explained by an audit record written before the redelivery: a
`DeliveryAttempted` of that message whose `outcome_unknown_recipients` names the recipient (egress's write-ahead
mark was still set when it tried again: an earlier attempt may or may not have reached the server). A
`DuplicateSuppressed` only ever stands for a delivery that did not happen, so it needs a recorded delivery before it.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable


def _named(events: Iterable[object], kind: str) -> list:
    return [e for e in events if type(e).__name__ == kind]


def delivery_violations(events: list, copies: Iterable[tuple[str, str]] | None = None) -> list[str]:
    """Violations of the delivered-once rule in `events` (and in `copies` seen at the downstream, if given)."""
    explained = Counter((e.message_id, r.lower()) for e in _named(events, "DeliveryAttempted")
                        for r in (e.outcome_unknown_recipients or ()))
    delivered = Counter((e.message_id, r.lower()) for e in _named(events, "MessageDelivered") for r in e.recipients)
    problems = [f"{m} <{r}>: {n} MessageDelivered, {explained[m, r]} explained by outcome_unknown_recipients"
                for (m, r), n in delivered.items() if n - 1 > explained[m, r]]
    if copies is not None:
        seen = Counter((m, r.lower()) for m, r in copies)
        problems += [f"{m} <{r}>: {n} copies at the downstream, {explained[m, r]} explained"
                     for (m, r), n in seen.items() if n - 1 > explained[m, r]]
    suppressed = {(e.message_id, r.lower()) for e in _named(events, "DuplicateSuppressed") for r in e.recipients}
    problems += [f"{m} <{r}>: DuplicateSuppressed without a recorded delivery"
                 for m, r in sorted(suppressed - set(delivered))]
    return problems
