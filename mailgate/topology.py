"""The pipeline's topology in one place, as Postfix's master.cf lists its daemons: each stage, what it reads and
what it writes. The README's picture and docs/architecture.md follow this table."""
from __future__ import annotations

from mailgate import topics

STAGES: dict[str, dict[str, list[str]]] = {
    "ingress": {
        "reads": ["SMTP clients"],
        "writes": [topics.RECEIVED, topics.EVENTS],
    },
    "processor": {
        "reads": [topics.RECEIVED],
        "writes": [topics.OUTBOUND, topics.QUARANTINE, topics.EVENTS, topics.DLQ],
    },
    "egress": {
        "reads": [topics.OUTBOUND, f"{topics.RETRY_PREFIX}<delay>s", topics.DELIVERED],
        "writes": [f"{topics.RETRY_PREFIX}<delay>s", topics.RECEIVED + " (DSNs)", topics.DELIVERED, topics.EVENTS,
                   topics.DLQ, "SMTP servers"],
    },
}
