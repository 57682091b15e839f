"""The docs that describe the pipeline say what the code does: the pictures in README.md and docs/architecture.md
name the processor's steps in the order processors/pipeline.py runs them, and the docs of mail.config name every
live settings section mailgate/core/config_events.py folds."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from mailgate.core import config_events

ROOT = Path(__file__).resolve().parents[2]
STEP_NAMES = {"verify": "verify", "sender_auth": "authenticate", "scan": "scan", "classify": "classify", "route": "route"}
"""The attribute Pipeline.handle calls each step by → the step's name in the pictures."""


def steps_in_code() -> list[str]:
    tree = ast.parse((ROOT / "processors" / "pipeline.py").read_text())
    handle = next(n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef) and n.name == "handle")
    calls = sorted((n for n in ast.walk(handle) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                    and n.func.attr in STEP_NAMES), key=lambda n: (n.lineno, n.col_offset))
    return [STEP_NAMES[c.func.attr] for c in calls]


def test_the_pipeline_pictures_name_the_processors_steps_in_the_order_it_runs_them():
    steps = steps_in_code()
    assert steps == ["verify", "authenticate", "scan", "classify", "route"]
    for doc in ("README.md", "docs/architecture.md"):
        picture = re.sub(r"\(\w+\)", "", (ROOT / doc).read_text().split("```")[1])  # classify(spam) -> classify
        assert " ─► ".join(steps) in picture, doc


def test_the_docs_of_mail_config_name_every_live_settings_section():
    topics_source = ast.parse((ROOT / "mailgate" / "core" / "topics.py").read_text())
    body = topics_source.body
    config_doc = next(b.value.value for a, b in zip(body, body[1:]) if isinstance(a, ast.Assign)
                      and a.targets[0].id == "CONFIG")
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for section in config_events.SETTINGS_SECTIONS:
        assert f"`{section}`" in config_events.__doc__, section
        assert f"`{section}`" in config_doc, section
        assert f"`{section}`" in architecture, section
