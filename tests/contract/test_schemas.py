"""Contract tests of the event schemas: the only agreement between stages must be sound and must evolve safely."""
from __future__ import annotations

import json

import fastavro
import pytest

import schemas
from schemas.codec import (REGISTRY, RELEASED_DIR, SCHEMA_DIR, UndecodableRecord, UnknownSchemaVersion, decode,
                           encode, fingerprint64, header_of, to_json_dict)
from tests.support.schema_samples import sample as _sample
from tests.support.schema_samples import write_with as _write_old

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


KEPT = sorted(RELEASED_DIR.glob("*/*.avsc"))


@pytest.mark.parametrize("path", KEPT, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_released_writer_schema_decodes_through_the_product_codec(path):
    """A schema change that breaks records already in Kafka fails here: add fields with defaults instead.

    The record goes through `schemas.decode`, the codec every stage uses, not through fastavro directly."""
    writer = json.loads(path.read_text())
    sample = _sample(writer)
    record = decode(_write_old(writer, sample))
    assert type(record).__name__ == writer["name"]
    current = json.loads((SCHEMA_DIR / f"{writer['name']}.avsc").read_text())
    kept_fields = {f["name"] for f in writer["fields"]} & {f["name"] for f in current["fields"]}
    as_data = to_json_dict(record)
    for name in kept_fields:
        if not isinstance(sample[name], (bytes, dict, list)):
            assert as_data[name] == sample[name], name
    for f in current["fields"]:
        if f["name"] not in kept_fields:
            assert getattr(record, f["name"]) == f["default"], f"new field {f['name']} takes its default"


def test_a_record_from_an_unknown_future_version_names_its_fingerprint():
    future = json.loads((SCHEMA_DIR / "GatewayRemoved.avsc").read_text())
    future["fields"].append({"name": "added_later", "type": "string", "default": "", "doc": "a future field"})
    sample = _sample(future)
    fingerprint = header_of(future)[2:][::-1].hex()
    with pytest.raises(UnknownSchemaVersion, match=fingerprint) as caught:
        decode(_write_old(future, sample))
    assert caught.value.fingerprint == fingerprint


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
