"""The delivered-once rule the crash and scaling tests assert (tests/support/exactly_once.py), on hand-made events."""
from __future__ import annotations

from types import SimpleNamespace

from tests.support.exactly_once import delivery_violations


def event(kind: str, mid: str, **fields) -> object:
    return type(kind, (SimpleNamespace,), {})(message_id=mid, **fields)


def delivered(mid: str, *rcpts: str) -> object:
    return event("MessageDelivered", mid, recipients=list(rcpts))


def attempted(mid: str, *unknown: str) -> object:
    return event("DeliveryAttempted", mid, outcome_unknown_recipients=list(unknown))


def test_one_delivery_per_recipient_is_fine():
    assert delivery_violations([delivered("m1", "a@x"), delivered("m2", "b@x")], [("m1", "a@x"), ("m2", "b@x")]) == []


def test_an_unexplained_second_delivery_or_copy_is_a_violation():
    assert delivery_violations([delivered("m1", "a@x"), delivered("m1", "A@x")]) == [
        "m1 <a@x>: 2 MessageDelivered, 0 explained by outcome_unknown_recipients"]
    assert delivery_violations([delivered("m1", "a@x")], [("m1", "a@x"), ("m1", "a@x")]) == [
        "m1 <a@x>: 2 copies at the downstream, 0 explained"]


def test_a_second_delivery_explained_by_outcome_unknown_is_fine_but_not_a_third():
    events = [delivered("m1", "a@x"), attempted("m1", "a@x"), delivered("m1", "a@x")]
    assert delivery_violations(events, [("m1", "a@x")] * 2) == []
    assert delivery_violations(events + [delivered("m1", "a@x")]) != []
    assert delivery_violations(events, [("m1", "b@x")] * 2) != []  # the explanation names another recipient


def test_suppression_needs_a_recorded_delivery():
    suppressed = event("DuplicateSuppressed", "m1", recipients=["a@x"])
    assert delivery_violations([suppressed]) == ["m1 <a@x>: DuplicateSuppressed without a recorded delivery"]
    assert delivery_violations([delivered("m1", "a@x"), suppressed]) == []
