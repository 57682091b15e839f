"""The type stub of the record classes (schemas/__init__.pyi) says what the schemas say: a schema change that did
not run scripts/snapshot-schemas fails here, and the stub's classes are the codec's classes with the same fields."""
from __future__ import annotations

import dataclasses

import schemas
from schemas import stub


def test_the_committed_stub_is_what_the_schemas_generate():
    assert stub.STUB.read_text() == stub.render(), "schemas/*.avsc changed: run ./scripts/snapshot-schemas"


def test_every_record_class_of_the_codec_is_in_the_stub_with_its_fields():
    text = stub.render()
    for name, cls in schemas.REGISTRY.classes.items():
        block = text.split(f"class {name}:\n", 1)[1].split("\n\n", 1)[0]
        assert [line.split(":")[0].strip() for line in block.splitlines()[1:-1]] == \
            [f.name for f in sorted(dataclasses.fields(cls), key=lambda f: _avro_order(name, f.name))], name


def _avro_order(record: str, field: str) -> int:
    """A field's position in its schema (the stub lists fields as the schema does)."""
    for et in schemas.REGISTRY.by_name.values():
        for raw in _records(et.raw):
            if raw["name"] == record:
                return [f["name"] for f in raw["fields"]].index(field)
    raise AssertionError(record)


def _records(raw):
    if isinstance(raw, dict):
        if raw.get("type") == "record":
            yield raw
            for f in raw["fields"]:
                yield from _records(f["type"])
        elif raw.get("type") == "array":
            yield from _records(raw["items"])
    elif isinstance(raw, list):
        for u in raw:
            yield from _records(u)
