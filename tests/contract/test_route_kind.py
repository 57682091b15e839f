"""The `direct` route kind (issue #36): an enum symbol added to MessageRouted's Route.kind. Records written before it
(only `primary` and `gateway`) still decode through the product codec, a `direct` record round-trips, and a reader
whose schema does not know a symbol the writer used resolves it to the enum's default (`gateway`) instead of
failing — the Avro enum resolution an older reader applies to a newer symbol once its schema has the default."""
from __future__ import annotations

import copy
import io
import json

import fastavro

import schemas
from schemas.codec import RELEASED_DIR, SCHEMA_DIR, decode, encode
from tests.support.schema_samples import sample, write_with


def _route_kind(schema: dict) -> dict:
    route = next(f for f in schema["fields"] if f["name"] == "route")["type"]
    return next(f for f in route["fields"] if f["name"] == "kind")["type"]


def _kept_without_direct() -> list[dict]:
    kept = [json.loads(p.read_text()) for p in sorted((RELEASED_DIR / "MessageRouted").glob("*.avsc"))]
    return [s for s in kept if "direct" not in _route_kind(s)["symbols"]]


def test_records_written_before_direct_existed_still_decode_with_their_kind():
    old = _kept_without_direct()
    assert old, "the kept schemas include MessageRouted versions without `direct`"
    for writer in old:
        data = sample(writer)
        data["route"]["kind"] = "gateway"
        assert decode(write_with(writer, data)).route.kind == "gateway"


def test_a_direct_route_round_trips():
    r = schemas.MessageRouted(
        message_id="m1", occurred_at=1, node="n", direction="outbound",
        route=schemas.Route(kind="direct", destination="far.test", candidates=[], hosts=[]),
        mail_from="a@b.test", recipients=["x@far.test"], received_at=1, not_before=1, expires_at=2)
    assert decode(encode(r)).route.kind == "direct"


def test_a_reader_that_does_not_know_a_symbol_reads_the_enum_default():
    current = json.loads((SCHEMA_DIR / "MessageRouted.avsc").read_text())
    assert _route_kind(current)["default"] == "gateway"
    future = copy.deepcopy(current)
    _route_kind(future)["symbols"].append("later")
    data = sample(future)
    data["route"]["kind"] = "later"
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(future)), data)
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, fastavro.parse_schema(copy.deepcopy(future)),
                                      fastavro.parse_schema(copy.deepcopy(current)))
    assert read["route"]["kind"] == "gateway"
