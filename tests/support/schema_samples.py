"""Records as any writer schema writes them: sample Avro data for a schema, and its single-object bytes.

Reads: a writer schema as JSON data (a kept one, or one from an old commit). Emits: `sample(schema)` (a value of
every field: the first non-null branch of a union, one item per array, the first enum symbol) and
`write_with(schema, data)` (the 10-byte header naming the schema's fingerprint, then the Avro body): byte for byte
what the codec of the release that had the schema produced.
"""
from __future__ import annotations

import copy
import io
from typing import Any

import fastavro

from schemas.codec import header_of

_PRIMITIVE = {"string": "x", "long": 1, "int": 1, "boolean": True, "double": 1.5, "float": 1.5, "bytes": b"x",
              "null": None}


def sample(schema: Any) -> Any:
    """A value of `schema` with every field set (nested records too)."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return sample(branches[0]) if branches else None
    t = schema if isinstance(schema, str) else schema.get("type")
    if t == "record":
        return {f["name"]: sample(f["type"]) for f in schema["fields"]}
    if t == "array":
        return [sample(schema["items"])]
    if t == "enum":
        return schema["symbols"][0]
    if t == "map":
        return {"k": sample(schema["values"])}
    if isinstance(t, (dict, list)):
        return sample(t)
    return _PRIMITIVE[t]


def write_with(writer: dict, data: Any) -> bytes:
    """`data` encoded with `writer` and its own single-object header."""
    buf = io.BytesIO()
    buf.write(header_of(writer))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(writer)), data)
    return buf.getvalue()
