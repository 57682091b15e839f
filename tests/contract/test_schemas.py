"""Contract tests of the event schemas: the only agreement between stages must be sound and must evolve safely."""
from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

import schemas
from schemas.codec import REGISTRY, SCHEMA_DIR, UndecodableRecord, decode, encode, fingerprint64

RELEASED = Path(__file__).parent / "released"
ALL = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


def _fields(node):
    if isinstance(node, dict):
        if node.get("type") == "record":
            for f in node["fields"]:
                yield node["name"], f
                yield from _fields(f["type"])
        elif node.get("type") == "array":
            yield from _fields(node["items"])
    elif isinstance(node, list):
        for n in node:
            yield from _fields(n)


@pytest.mark.parametrize("name", ALL)
def test_every_field_has_a_doc(name):
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    assert raw.get("doc"), f"{name} has no doc"
    missing = [f"{rec}.{f['name']}" for rec, f in _fields(raw) if not f.get("doc")]
    assert not missing, f"fields without doc: {missing}"


@pytest.mark.parametrize("name", ALL)
def test_event_names_are_past_tense_facts(name):
    assert name.endswith(("ed", "Requested")) or name in {"DeadLettered"}, name


@pytest.mark.parametrize("name", [n for n in ALL if (RELEASED / f"{n}.avsc").exists()])
def test_released_records_still_decode_with_the_current_schema(name):
    """A schema change that breaks records already in Kafka fails here: add fields with defaults instead. (A new
    schema has nothing released yet: it is not in the list, rather than a skip.)"""
    released = RELEASED / f"{name}.avsc"
    old = fastavro.parse_schema(json.loads(released.read_text()))
    new = fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))
    sample = _sample(json.loads(released.read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, sample)
    buf.seek(0)
    fastavro.schemaless_reader(buf, old, new)  # raises SchemaResolutionError if incompatible


def _sample(schema):
    t = schema if isinstance(schema, (str, list)) else schema.get("type")
    if isinstance(schema, list):
        return None if "null" in schema else _sample(schema[0])
    if t == "record":
        return {f["name"]: _sample(f["type"]) for f in schema["fields"]}
    if t == "array":
        return [_sample(schema["items"])]
    if t == "enum":
        return schema["symbols"][0]
    if isinstance(t, dict):
        return _sample(t)
    return {"string": "x", "long": 1, "int": 1, "boolean": True, "double": 1.5, "bytes": b"x", "null": None}[t]


def test_round_trip_keeps_every_field():
    r = schemas.MessageRouted(
        message_id="m1", occurred_at=1, node="n", direction="outbound",
        route=schemas.Route(kind="gateway", destination="g1", candidates=["g1", "g2"], hosts=[]),
        mail_from="a@b.test", recipients=["x@y.test"], received_at=1, not_before=2, expires_at=3, body=b"\x00\xff")
    assert decode(encode(r)) == r


def test_records_carry_their_schema_fingerprint_single_object_encoding():
    r = schemas.GatewayRemoved(occurred_at=1, node="n", kind="outbound", name="g", operator="me")
    data = encode(r)
    raw = json.loads((SCHEMA_DIR / "GatewayRemoved.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    assert data[:2] == b"\xc3\x01"
    assert int.from_bytes(data[2:10], "little") == fingerprint64(canonical)
    assert data[2:10].hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")


@pytest.mark.parametrize("junk", [b"", b"hello", b"\xc3\x01" + b"\x00" * 8 + b"x", b"\xc3\x01" + b"\xff" * 20])
def test_undecodable_bytes_raise_one_error_type(junk):
    with pytest.raises(UndecodableRecord):
        decode(junk)


def test_truncated_record_is_undecodable():
    data = encode(schemas.GatewayRemoved(occurred_at=1, node="n", kind="outbound", name="g", operator="me"))
    with pytest.raises(UndecodableRecord):
        decode(data[:-3])


def test_every_schema_is_registered():
    assert sorted(REGISTRY.by_name) == ALL
