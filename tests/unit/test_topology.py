"""mailgate/core/topology.py says what each stage reads and writes; this reads the stages' source with `ast` (as
test_layers.py does, no broker) and checks the table against it, so a stage that starts writing or consuming a topic
cannot leave the table — and the README's picture and docs/architecture.md, which follow it — behind.

What the code writes: the topic of every `Output(topic, ...)` (a `topics.X` constant, `topics.retry_topic(...)`, or a
local name bound to one), `audit(...)` (mail.events), and `<producer>.send(topics.X, ...)`. What it reads: the topics
it subscribes to (`subscribe(...)`, its argument followed to where that name is built), faust's `app.topic(topics.X)`,
a `TopicReader(cfg, topics.X, ...)`, a whole topic assigned (`assign_whole_topic(consumer, topics.X)`), and
mail.config through the process's `LiveConfig`.
"""
from __future__ import annotations

import ast
from pathlib import Path

from mailgate.core import topics, topology

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"ingress": "ingress", "processor": "processors", "egress": "egress"}
"""topology.STAGES's name → the stage's package."""
TOPIC_NAMES = {value: name for name, value in vars(topics).items() if name.isupper() and isinstance(value, str)
               and value.startswith("mail.") and not value.endswith(".")}


def _topic(node: ast.AST, local: dict[str, ast.AST]) -> str | None:
    """The topic an expression names, if it is one of the forms the module docstring lists."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "topics":
        value = getattr(topics, node.attr, None)
        return value if value in TOPIC_NAMES else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "retry_topic":
        return topology.RETRY
    if isinstance(node, ast.Name) and node.id in local:
        return _topic(local.pop(node.id), local)
    return None


def _topics_in(node: ast.AST) -> set[str]:
    return {t for n in ast.walk(node) if (t := _topic(n, {})) is not None}


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _trees(package: str) -> list[ast.Module]:
    return [ast.parse(p.read_text(), str(p)) for p in sorted((ROOT / package).rglob("*.py"))]


def _scopes(tree: ast.Module):
    """(function or module, its simple `name = value` assignments)."""
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        local = {t.id: n.value for n in ast.walk(scope) if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)}
        yield scope, local


def writes_in_code(package: str) -> tuple[set[str], list[str]]:
    """(topics written, Output calls whose topic the forms above do not name)."""
    found, unknown = set(), []
    for tree in _trees(package):
        for scope, local in _scopes(tree):
            for call in (n for n in ast.walk(scope) if isinstance(n, ast.Call)):
                callee = _name(call.func)
                if callee == "audit":
                    found.add(topics.EVENTS)
                elif callee == "Output" and call.args:
                    topic = _topic(call.args[0], dict(local))
                    if topic is None:
                        unknown.append(ast.unparse(call))
                    else:
                        found.add(topic)
                elif callee in ("send", "send_and_wait") and call.args:
                    topic = _topic(call.args[0], dict(local))
                    if topic is not None:
                        found.add(topic)
    return found, unknown


def reads_in_code(package: str) -> set[str]:
    trees = _trees(package)
    subscribed: set[str] = set()  # names given to subscribe(...): followed to where they are built
    found: set[str] = set()
    for tree in trees:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            callee = _name(call.func)
            if callee == "subscribe" and call.args:
                found |= _topics_in(call.args[0])
                subscribed.add(_name(call.args[0]) or "")
            elif callee == "LiveConfig":
                found.add(topics.CONFIG)
            elif callee == "TopicReader" and len(call.args) > 1 or callee == "assign_whole_topic" and len(call.args) > 1:
                found |= {t for t in [_topic(call.args[1], {})] if t}
            elif callee == "topic" and isinstance(call.func, ast.Attribute) and _name(call.func.value) == "app" \
                    and call.args:
                found |= {t for t in [_topic(call.args[0], {})] if t}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(_name(t) in subscribed for t in node.targets):
                found |= _topics_in(node.value)
            elif isinstance(node, ast.Call) and _name(node.func) == "append" \
                    and isinstance(node.func, ast.Attribute) and _name(node.func.value) in subscribed:
                found |= _topics_in(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in subscribed:
                found |= set().union(*(_topics_in(r) for r in ast.walk(node) if isinstance(r, ast.Return)))
    return found


def table(stage: str, direction: str) -> set[str]:
    """The topics of topology.STAGES[stage][direction], without their notes (`mail.received (DSNs)`) and without
    what is not a topic (SMTP clients and servers)."""
    out = set()
    for entry in topology.STAGES[stage][direction]:
        name = entry.split(" (")[0]
        if name in TOPIC_NAMES or name == topology.RETRY:
            out.add(name)
    return out


def test_every_stage_of_the_table_is_a_package():
    assert set(topology.STAGES) == set(PACKAGES)


def test_each_stage_writes_exactly_the_topics_the_table_says():
    for stage, package in PACKAGES.items():
        written, unknown = writes_in_code(package)
        assert unknown == [], f"{package}: Output to a topic this test cannot name: {unknown}"
        assert written == table(stage, "writes"), stage


def test_each_stage_reads_exactly_the_topics_the_table_says():
    for stage, package in PACKAGES.items():
        assert reads_in_code(package) == table(stage, "reads"), stage


def test_the_checker_sees_an_output_the_table_lacks(monkeypatch):
    """The checker itself: the processor's table without mail.quarantine is found wrong."""
    wrong = {**topology.STAGES["processor"], "writes": [w for w in topology.STAGES["processor"]["writes"]
                                                       if w != topics.QUARANTINE]}
    monkeypatch.setitem(topology.STAGES, "processor", wrong)
    assert writes_in_code("processors")[0] - table("processor", "writes") == {topics.QUARANTINE}
