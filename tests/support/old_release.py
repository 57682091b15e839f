"""Records as an earlier release wrote them: encoded with a kept writer schema (schemas/released/, listed oldest
first in schemas/released/KEPT).

`era` picks the schema of each event: "oldest" (the first version any commit of main had) or "newest" (the last
one kept). A record is built with today's record classes (so tests read naturally), then cut to the fields the kept
schema has (a field today's record lacks takes the kept schema's default, else a sample value) and written with
that schema and its own single-object header, byte for byte what that release's codec produced.
"""
from __future__ import annotations

import json
from typing import Any

from schemas.codec import RELEASED_DIR, _to_avro
from tests.support.schema_samples import sample, write_with

ERAS = ("oldest", "newest")


def kept_schema(name: str, era: str) -> dict:
    """The kept writer schema of event `name` of that era."""
    order = [line.split()[1] for line in (RELEASED_DIR / "KEPT").read_text().splitlines()
             if line.strip() and not line.startswith("#") and line.split()[0] == name]
    if not order:
        raise LookupError(f"no kept schema of {name} in schemas/released/KEPT")
    fingerprint = order[0] if era == "oldest" else order[-1]
    return json.loads((RELEASED_DIR / name / f"{fingerprint}.avsc").read_text())


def _prune(schema: Any, value: Any) -> Any:
    """`value` (Avro data of today's schema) cut down, or filled up, to what `schema` (the kept one) has."""
    if isinstance(schema, list):
        for branch in schema:
            if isinstance(branch, dict) and branch.get("type") in ("record", "array") \
                    and isinstance(value, (dict, list)):
                return _prune(branch, value)
        return value
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            return {f["name"]: _prune(f["type"], value[f["name"]]) if f["name"] in value
                    else f["default"] if "default" in f else sample(f["type"]) for f in schema["fields"]}
        if schema.get("type") == "array":
            return [_prune(schema["items"], v) for v in value]
    return value


def encode_old(record: Any, era: str = "newest") -> bytes:
    """`record` as the codec of the release with the `era` schema of its event encoded it."""
    raw = kept_schema(type(record).__name__, era)
    return write_with(raw, _prune(raw, _to_avro(record)))
