"""The pipeline's topology in one place, as Postfix's master.cf lists its daemons: each stage (and operator tool
that writes), what it reads and what it writes. The README's picture and docs/architecture.md follow this table."""
from __future__ import annotations

from mailgate.core import topics

RETRY = f"{topics.RETRY_PREFIX}<delay>s"

STAGES: dict[str, dict[str, list[str]]] = {
    "ingress": {
        "reads": ["SMTP clients", topics.CONFIG],
        "writes": [topics.RECEIVED, topics.EVENTS],
    },
    "processor": {
        "reads": [topics.RECEIVED, topics.CONFIG],
        "writes": [topics.OUTBOUND, topics.QUARANTINE, topics.RECEIVED + " (DSNs)", topics.EVENTS, topics.DLQ],
    },
    "egress": {
        "reads": [topics.OUTBOUND, RETRY, topics.HOLD, topics.DELIVERED, topics.CONFIG, topics.CONTROL],
        "writes": [RETRY, topics.HOLD, topics.RECEIVED + " (DSNs)", topics.DELIVERED, topics.EVENTS, topics.DLQ,
                   topics.CONTROL + " (tombstones of finished commands)", "SMTP servers"],
    },
}

OPERATOR_TOOLS: dict[str, dict[str, list[str]]] = {
    "config apply / gateway / admin": {"reads": [topics.CONFIG], "writes": [topics.CONFIG]},
    "cache purge": {"reads": [], "writes": [topics.CONFIG]},
    "replay": {"reads": [topics.RECEIVED, topics.OUTBOUND, RETRY], "writes": [topics.RECEIVED, topics.OUTBOUND,
                                                                             topics.EVENTS]},
    "quarantine release / delete": {"reads": [topics.QUARANTINE, topics.EVENTS],
                                    "writes": [topics.OUTBOUND, topics.EVENTS]},
    "trace / events / queue": {"reads": [topics.EVENTS], "writes": []},
    "queue hold|release|delete|bounce|flush / destination suspend|resume|flush / admin": {
        "reads": [topics.EVENTS, topics.CONTROL], "writes": [topics.CONTROL, topics.EVENTS]},
    "tracker (message-tracking read model)": {"reads": [topics.EVENTS], "writes": ["tracking store"]},
    "trace / search / queue / quarantine list (default)": {"reads": ["tracking store"], "writes": []},
}
