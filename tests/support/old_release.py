"""Records as the previous release wrote them: encoded with its writer schemas (tests/contract/released/*.avsc).

A record is built with today's record classes (so tests read naturally), then the fields the released schema does
not have are dropped and the rest written with the released schema and its own single-object header, byte for byte
what the previous release's codec produced.
"""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro

from schemas.codec import _to_avro, header_of

RELEASED = Path(__file__).resolve().parents[1] / "contract" / "released"


def released_schema(name: str) -> dict:
    return json.loads((RELEASED / f"{name}.avsc").read_text())


def _prune(schema: Any, value: Any) -> Any:
    """`value` (Avro data of today's schema) cut down to what `schema` (the released one) has."""
    if isinstance(schema, list):
        for branch in schema:
            if isinstance(branch, dict) and branch.get("type") in ("record", "array") \
                    and isinstance(value, (dict, list)):
                return _prune(branch, value)
        return value
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            return {f["name"]: _prune(f["type"], value[f["name"]]) for f in schema["fields"] if f["name"] in value}
        if schema.get("type") == "array":
            return [_prune(schema["items"], v) for v in value]
    return value


def encode_old(record: Any) -> bytes:
    """`record` as the previous release's codec encoded it."""
    raw = released_schema(type(record).__name__)
    buf = io.BytesIO()
    buf.write(header_of(raw))
    schema = fastavro.parse_schema(copy.deepcopy(raw))
    fastavro.schemaless_writer(buf, schema, _prune(raw, _to_avro(record)))
    return buf.getvalue()
