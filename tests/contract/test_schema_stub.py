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
        declared = {line.split(":")[0].strip() for line in block.splitlines()[1:-1]}
        assert declared == {f.name for f in dataclasses.fields(cls)}, name
