"""Every third-party module the installed code imports is declared in pyproject.toml's runtime dependencies
(issue 13: `cryptography` was imported but only the test extras pulled it in, so a plain install could not run)."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"mailgate", "schemas", "ingress", "processors", "egress"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module → one file importing it, over every package the wheel ships."""
    found: dict[str, str] = {}
    for pkg in OWN:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for n in names:
                    found.setdefault(n.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    dists = packages_distributions()
    missing = {}
    for module, where in imported_top_level_modules().items():
        if module in OWN or module in sys.stdlib_module_names:
            continue
        owners = {_norm(d) for d in dists.get(module, [module])}
        if not owners & declared:
            missing[module] = (sorted(owners), where)
    assert not missing, f"imported but not declared in [project].dependencies: {missing}"
