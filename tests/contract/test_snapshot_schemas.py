"""The release step, scripts/snapshot-schemas: it keeps each schema under its fingerprint and never rewrites one."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path

from schemas.codec import SCHEMA_DIR, header_of

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "snapshot-schemas"


def load_script():
    loader = importlib.machinery.SourceFileLoader("snapshot_schemas", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_a_release_keeps_every_schema_under_its_fingerprint(tmp_path, monkeypatch, capsys):
    script = load_script()
    monkeypatch.setattr(script, "RELEASED_DIR", tmp_path / "released")
    monkeypatch.setattr(script, "CONTRACT_RELEASED", tmp_path / "contract")
    (tmp_path / "contract").mkdir()
    monkeypatch.setattr("sys.argv", ["snapshot-schemas"])
    assert script.main() == 0
    for path in SCHEMA_DIR.glob("*.avsc"):
        raw = json.loads(path.read_text())
        kept = tmp_path / "released" / raw["name"] / f"{header_of(raw)[2:][::-1].hex()}.avsc"
        assert kept.read_text() == path.read_text()
        assert (tmp_path / "contract" / path.name).read_text() == path.read_text()
    capsys.readouterr()
    assert script.main() == 0 and capsys.readouterr().out == ""  # nothing new: nothing kept twice
