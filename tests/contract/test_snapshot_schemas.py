"""scripts/snapshot-schemas: it keeps each schema under its fingerprint, lists it in KEPT once, never rewrites one,
and `--history` keeps every version a git history had, oldest first."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from schemas.codec import SCHEMA_DIR, header_of

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "snapshot-schemas"


def load_script():
    loader = importlib.machinery.SourceFileLoader("snapshot_schemas", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _fp(raw: dict) -> str:
    return header_of(raw)[2:][::-1].hex()


def test_keeps_every_schema_under_its_fingerprint_and_lists_it_once(tmp_path, monkeypatch, capsys):
    script = load_script()
    monkeypatch.setattr(script, "RELEASED_DIR", tmp_path / "released")
    monkeypatch.setattr("sys.argv", ["snapshot-schemas"])
    assert script.main() == 0
    for path in SCHEMA_DIR.glob("*.avsc"):
        raw = json.loads(path.read_text())
        kept = tmp_path / "released" / raw["name"] / f"{_fp(raw)}.avsc"
        assert kept.read_text() == path.read_text()
        assert (raw["name"], _fp(raw)) in script.read_kept(tmp_path / "released")
    capsys.readouterr()
    assert script.main() == 0 and capsys.readouterr().out == ""  # nothing new: nothing kept twice
    kept = script.read_kept(tmp_path / "released")
    assert len(kept) == len(set(kept)) == len(list(SCHEMA_DIR.glob("*.avsc")))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_history_keeps_every_version_a_repository_had_oldest_first(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "schemas").mkdir(parents=True)
    v1 = json.loads((SCHEMA_DIR / "GatewayRemoved.avsc").read_text())
    v2 = dict(v1, fields=v1["fields"] + [{"name": "later", "type": "string", "default": "", "doc": "added"}])

    def commit(schema: dict, message: str) -> None:
        (repo / "schemas" / "GatewayRemoved.avsc").write_text(json.dumps(schema, indent=2))
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
                       check=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    commit(v1, "first")
    commit(v2, "second")
    script = load_script()
    monkeypatch.setattr(script, "ROOT", repo)
    monkeypatch.setattr(script, "RELEASED_DIR", tmp_path / "released")
    monkeypatch.setattr("sys.argv", ["snapshot-schemas", "--history", "HEAD"])
    assert script.main() == 0
    assert script.read_kept(tmp_path / "released") == [("GatewayRemoved", _fp(v1)), ("GatewayRemoved", _fp(v2))]
    for raw in (v1, v2):
        assert json.loads((tmp_path / "released" / "GatewayRemoved" / f"{_fp(raw)}.avsc").read_text()) == raw
