"""mailgate.core.deadletter: the one decode-or-dead-letter path of the processor and egress consumers."""
from __future__ import annotations

from types import SimpleNamespace

from mailgate.core.deadletter import decode_or_dead_letter
from schemas import CachePurgeRequested, MessageRouted, encode

PURGE = CachePurgeRequested(occurred_at=1, node="t", operator="op", target=None, request_id="r")


def _record(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="mail.outbound", partition=2, offset=41, key=b"k", value=value)


def test_garbage_becomes_a_dead_letter_with_its_bytes_and_place():
    event, dead = decode_or_dead_letter(_record(b"not avro"), MessageRouted, "n1")
    assert event is None
    assert (dead.source_topic, dead.partition, dead.offset, dead.key, dead.value, dead.node) == (
        "mail.outbound", 2, 41, b"k", b"not avro", "n1")
    assert dead.reason


def test_an_event_of_the_wrong_type_is_dead_lettered_with_its_name():
    event, dead = decode_or_dead_letter(_record(encode(PURGE)), MessageRouted, "n1")
    assert event is None and dead.reason == "unexpected CachePurgeRequested on mail.outbound"


def test_the_expected_event_passes():
    event, dead = decode_or_dead_letter(_record(encode(PURGE)), CachePurgeRequested, "n1")
    assert dead is None and event == PURGE
