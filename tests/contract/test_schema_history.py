"""Every schema version of every commit in this repository's history decodes to today's classes.

Each commit is a state someone may have deployed, so a record any of them wrote may still wait in a topic. The test
reads the history with git itself (not with scripts/snapshot-schemas, which it checks), builds a record of every
`schemas/*.avsc` of every commit reachable from HEAD with that writer schema (every field set), and decodes it
through `schemas.decode`, the codec every stage uses. Without the history (no .git, a shallow clone) it is skipped
with the reason; with MAILGATE_REQUIRE_HISTORY=1 (scripts/test, so CI) it fails instead.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from schemas import decode
from schemas.codec import RELEASED_DIR, SCHEMA_DIR
from tests.support.schema_samples import sample, write_with

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = "MAILGATE_REQUIRE_HISTORY"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def _history_missing() -> str | None:
    """Why the history cannot be read, or None."""
    if shutil.which("git") is None:
        return "git is not installed"
    try:
        inside = _git("rev-parse", "--is-inside-work-tree").strip() == "true"
    except subprocess.CalledProcessError:
        inside = False
    if not inside:
        return f"{ROOT} is not a git checkout (no .git): the history cannot be walked"
    if _git("rev-parse", "--is-shallow-repository").strip() == "true":
        return "a shallow clone: the history is cut short (git fetch --unshallow)"
    return None


def _require_history() -> None:
    reason = _history_missing()
    if reason and os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}; {REQUIRE}=1 asks for the whole history")
    if reason:
        pytest.skip(reason)


def _versions_by_commit() -> dict[str, dict[str, str]]:
    """commit -> {schema path: blob id} of every `schemas/*.avsc` it had."""
    out = {}
    for commit in _git("rev-list", "HEAD").split():
        tree = {}
        for line in _git("ls-tree", commit, "schemas/").splitlines():
            meta, path = line.split("\t", 1)
            if path.endswith(".avsc"):
                tree[path] = meta.split()[2]
        out[commit] = tree
    return out


def _blobs(ids: set[str]) -> dict[str, str]:
    """blob id -> its text, in one `git cat-file --batch`."""
    ordered = sorted(ids)
    done = subprocess.run(["git", "-C", str(ROOT), "cat-file", "--batch"], input="\n".join(ordered) + "\n",
                          check=True, capture_output=True, text=True).stdout
    texts, pos = {}, 0
    for blob in ordered:
        header_end = done.index("\n", pos)
        size = int(done[pos:header_end].split()[2])
        texts[blob] = done[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return texts


def test_a_record_of_every_schema_version_of_every_commit_decodes_to_todays_classes(record_property, capsys):
    _require_history()
    by_commit = _versions_by_commit()
    texts = _blobs({blob for tree in by_commit.values() for blob in tree.values()})
    decoded, failures, writers = 0, [], set()
    for commit, tree in by_commit.items():
        for path, blob in sorted(tree.items()):
            writer = json.loads(texts[blob])
            if not (SCHEMA_DIR / f"{writer['name']}.avsc").exists():
                failures.append(f"{commit[:7]} {path}: no schemas/{writer['name']}.avsc today")
                continue
            data = write_with(writer, sample(writer))
            writers.add(data[:10])
            try:
                record = decode(data)
            except Exception as err:  # the failure to report, with where it came from
                failures.append(f"{commit[:7]} {path}: {err}")
                continue
            assert type(record).__name__ == writer["name"]
            decoded += 1
    assert not failures, "\n".join(failures)
    summary = (f"schema history: {decoded} schema versions of {len(by_commit)} commits decoded "
               f"({len(writers)} distinct writer schemas)")
    record_property("schema_history", summary)
    with capsys.disabled():
        print(f"\n{summary}")


def test_every_writer_schema_the_history_had_is_kept():
    """A kept schema deleted together with its line in KEPT is still caught: git knows the history had it."""
    _require_history()
    by_commit = _versions_by_commit()
    texts = _blobs({blob for tree in by_commit.values() for blob in tree.values()})
    from schemas.codec import header_of
    missing = set()
    for text in texts.values():
        raw = json.loads(text)
        fingerprint = header_of(raw)[2:][::-1].hex()
        if not (RELEASED_DIR / raw["name"] / f"{fingerprint}.avsc").exists():
            missing.add(f"schemas/released/{raw['name']}/{fingerprint}.avsc")
    assert not missing, (f"writer schemas of earlier commits not kept: {sorted(missing)}; "
                         f"run ./scripts/snapshot-schemas --history HEAD")
