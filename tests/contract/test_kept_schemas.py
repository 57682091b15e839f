"""The kept writer schemas stay complete: a schema change cannot land without its copy, and no copy can be lost.

`schemas/released/KEPT` lists every schema `scripts/snapshot-schemas` ever kept (append-only, oldest first), so a
deleted file under `schemas/released/` is seen without git. A file deleted together with its line is caught by
tests/contract/test_schema_history.py, which knows from git what every commit had.
"""
from __future__ import annotations

import json

import fastavro
import pytest

from schemas.codec import RELEASED_DIR, SCHEMA_DIR, header_of

KEPT_FILE = RELEASED_DIR / "KEPT"
RUN = "run ./scripts/snapshot-schemas in the same commit as the schema change"


def _kept() -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in KEPT_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _fingerprint(raw: dict) -> str:
    return header_of(raw)[2:][::-1].hex()


def _canonical(raw: dict) -> str:
    return fastavro.schema.to_parsing_canonical_form(raw)


@pytest.mark.parametrize("name", sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc")))
def test_every_current_schema_has_an_identical_kept_copy(name):
    """Identical as the wire sees it (the parsing canonical form, which the fingerprint names): a doc change needs
    no new copy, a changed field does."""
    current = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    fingerprint = _fingerprint(current)
    copy = RELEASED_DIR / name / f"{fingerprint}.avsc"
    assert copy.exists(), f"schemas/{name}.avsc ({fingerprint}) has no copy in schemas/released/: {RUN}"
    assert _canonical(json.loads(copy.read_text())) == _canonical(current), f"{copy} differs from schemas/{name}.avsc"
    assert (name, fingerprint) in _kept(), f"{name} {fingerprint} is not in schemas/released/KEPT: {RUN}"


@pytest.mark.parametrize("name,fingerprint", _kept(), ids=lambda v: v)
def test_every_schema_ever_kept_is_still_there(name, fingerprint):
    """Deleting a kept schema would dead-letter every record of it still in Kafka."""
    path = RELEASED_DIR / name / f"{fingerprint}.avsc"
    assert path.exists(), (f"schemas/released/{name}/{fingerprint}.avsc is listed in schemas/released/KEPT but gone: "
                           f"records it wrote could no longer be read; restore it (git checkout) or "
                           f"./scripts/snapshot-schemas --history HEAD")


@pytest.mark.parametrize("path", sorted(RELEASED_DIR.glob("*/*.avsc")), ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_kept_file_is_named_by_its_fingerprint_and_listed(path):
    raw = json.loads(path.read_text())
    assert raw["name"] == path.parent.name
    assert _fingerprint(raw) == path.stem, f"{path} was edited: a kept schema is never changed"
    assert (raw["name"], path.stem) in _kept(), f"{path} is not in schemas/released/KEPT: {RUN}"


def test_kept_lists_each_schema_once():
    kept = _kept()
    assert len(kept) == len(set(kept))
