"""Egress in rooms (docs/architecture.md): the consumer, the decisions, one delivery attempt and the delivered index
each in their own modules, every module small."""
from __future__ import annotations

import ast
from pathlib import Path

EGRESS = Path(__file__).resolve().parents[2] / "egress"
DELIVERY_ROOM = ["delivery", "targets", "mx", "pool", "smtp_session", "pipelining", "dkim_signing", "health",
                 "errors", "outcome"]
UPSTREAM = ["runner", "consumer", "queue_manager", "queue_command_follower"]
"""The rooms a message passes before delivery (admission is shared: the pool takes its session slots there)."""


def source(name: str) -> str:
    return (EGRESS / f"{name}.py").read_text()


def modules() -> list[str]:
    return sorted(p.stem for p in EGRESS.glob("*.py") if p.stem != "__init__")


def egress_imports(name: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source(name))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("egress."):
            found.add(node.module.split(".", 1)[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("egress.")}
    return found


def test_every_egress_module_is_under_300_lines():
    assert {m: n for m in modules() if (n := len(source(m).splitlines())) >= 300} == {}


def test_only_the_consumer_joins_the_egress_consumer_group():
    assert [m for m in modules() if '"mailgate-egress"' in source(m)] == ["consumer"]


def test_only_admission_makes_a_semaphore():
    assert [m for m in modules() if "Semaphore(" in source(m)] == ["admission"]


def test_only_the_delivered_index_makes_records_for_mail_delivered():
    assert [m for m in modules() if "topics.DELIVERED" in source(m)] == ["delivered_index"]


def test_the_delivery_room_imports_neither_the_consumer_nor_the_queue_manager():
    assert {m: sorted(egress_imports(m) & set(UPSTREAM)) for m in DELIVERY_ROOM
            if egress_imports(m) & set(UPSTREAM)} == {}
