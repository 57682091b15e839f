"""The import rule of docs/architecture.md: each layer imports only from the layers below it, and the three stages
never import each other. Read from the source with `ast`, so a new upward import fails here before review."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["schemas", "mailgate", "ingress", "processors", "egress"]

# (layer number, module prefix), most specific prefix first.
LAYERS = [
    (0, "schemas"),
    (1, "mailgate.core"),
    (2, "mailgate.mail"),
    (3, "ingress"),
    (3, "processors"),
    (3, "egress"),
    (4, "mailgate.ops"),
]
STAGES = {"ingress", "processors", "egress"}


def layer_of(module: str) -> tuple[int, str]:
    for number, prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return number, prefix
    raise AssertionError(f"{module} belongs to no layer: add it to a package of docs/architecture.md's layers")


def project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imports_of(module: str, path: Path):
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:  # `from mailgate import core` names a module
                yield f"{target}.{alias.name}"


def violations() -> list[str]:
    found = []
    for module, path in project_modules():
        if module == "mailgate":
            continue
        own_layer, own_prefix = layer_of(module)
        for target in imports_of(module, path):
            if target.split(".")[0] not in PACKAGES or target == "mailgate":
                continue
            try:
                layer, prefix = layer_of(target)
            except AssertionError:
                continue  # `from mailgate.core import config` also yields the package-level name; checked above
            if layer > own_layer:
                found.append(f"{module} (layer {own_layer}) imports {target} (layer {layer})")
            elif prefix in STAGES and own_prefix in STAGES and prefix != own_prefix:
                found.append(f"stage {own_prefix} imports stage {prefix}: {module} -> {target}")
    return sorted(set(found))


def test_no_module_imports_from_a_layer_above_it_or_another_stage():
    assert violations() == []


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a core module importing an operator tool is reported."""
    bad = ROOT / "mailgate" / "core" / "_layer_probe.py"
    bad.write_text("from mailgate.ops.cli import main as cli\nimport egress.runner\n")
    try:
        found = violations()
    finally:
        bad.unlink()
    assert "mailgate.core._layer_probe (layer 1) imports mailgate.ops.cli (layer 4)" in found
    assert "mailgate.core._layer_probe (layer 1) imports egress.runner (layer 3)" in found


def import_graph(prefix: str) -> dict[str, set[str]]:
    """module -> the modules under `prefix` it imports, anywhere in its body (a function-level import counts: it
    is how the old circle of `cli.py` and the `*_cli.py` modules was hidden)."""
    modules = {m: p for m, p in project_modules() if m.startswith(prefix)}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target in imports_of(module, path):
            while target and target not in modules:  # `from a.b import name` names a.b
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_among_the_operator_tools():
    """Each operator command imports the CLI's helper (mailgate.ops.cli.command) and is registered by the CLI's
    main; nothing imports back from main, so the operator tools form no circle."""
    assert circles(import_graph("mailgate.ops")) == []


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
