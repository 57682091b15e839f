"""Unit tests of the operator tools' pure logic: time specs, event filters, the queue fold, replay selection."""
from __future__ import annotations

import pytest

from mailgate.ops.audit.reader import Undecodable, describe
from mailgate.core.config import parse_config
from mailgate.ops.audit.events_cli import EventFilter
from mailgate.ops.audit.timespec import TimeSpecError, parse_time
from mailgate.ops.queue.view import QueueView, render
from mailgate.ops.audit.replay import ReplayError, ReplayRequest, expected_event, reinjection, selected
from schemas import (DeliveryAttempted, DeliveryDeferred, DuplicateSuppressed, MessageBounced, MessageClassified,
                     MessageDelivered, MessageReceived, MessageRouted, RecipientResult, Route, SmtpReply, decode)

NOW = 1_700_000_000_000


def received(mid="M1", body=b"x", rcpt="bob@example.test") -> MessageReceived:
    return MessageReceived(message_id=mid, occurred_at=NOW, node="n", direction="inbound", client_address="1.2.3.4",
                           client_helo="c", mail_from="alice@sender.test", rcpt_to=[rcpt], size_bytes=1,
                           body_sha256="0", body=body)


def routed(mid="M1", rcpts=("a@example.test", "b@example.test"), tier=-1, not_before=NOW) -> MessageRouted:
    return MessageRouted(message_id=mid, occurred_at=NOW, node="n", direction="inbound",
                         route=Route(kind="primary", destination="primary", candidates=[], hosts=["127.0.0.1:25"]),
                         mail_from="alice@sender.test", recipients=list(rcpts), received_at=NOW - 60_000,
                         not_before=not_before, expires_at=NOW + 10**9, retry_tier=tier, body=b"body")


def deferred(mid="M1", rcpts=("a@example.test", "b@example.test")) -> DeliveryDeferred:
    return DeliveryDeferred(message_id=mid, occurred_at=NOW, node="n", recipients=list(rcpts),
                            reason="451 4.3.0 busy", attempt=1, next_attempt_at=NOW + 1000, retry_topic="mail.retry.1s")


def delivered(mid="M1", rcpts=("a@example.test",)) -> MessageDelivered:
    return MessageDelivered(message_id=mid, occurred_at=NOW, node="n", recipients=list(rcpts), gateway="primary",
                            host="127.0.0.1:25", reply_text="250 ok", attempt=1, received_at=NOW)


def test_parse_time_relative_and_iso():
    assert parse_time("10m", NOW) == NOW - 600_000
    assert parse_time("2h", NOW) == NOW - 7_200_000
    assert parse_time("1.5d", NOW) == NOW - 129_600_000
    assert parse_time("2023-11-14T22:13:20Z") == NOW
    assert parse_time("2023-11-14T22:13:20") == NOW  # naive means UTC
    assert parse_time("2023-11-14T23:13:20+01:00") == NOW
    with pytest.raises(TimeSpecError):
        parse_time("yesterday", NOW)


def test_filter_by_type_and_domain_follows_the_message():
    flt = EventFilter(domain="example.test")
    classified = MessageClassified.__new__(MessageClassified)  # no address fields; only the message id matters
    object.__setattr__(classified, "message_id", "M1")
    assert flt.matches(received("M1"))
    assert flt.matches(classified)  # later event of a matching message
    assert not flt.matches(received("M2", rcpt="x@other.test"))
    typed = EventFilter(types={"DeliveryDeferred"})
    assert typed.matches(deferred()) and not typed.matches(received())
    garbage = Undecodable("mail.events", 0, 7, NOW, "not an Avro single-object record")
    assert typed.matches(garbage) and "UNDECODABLE" in describe(garbage) and "@7" in describe(garbage)


def test_describe_spells_out_replies_and_reasons():
    att = DeliveryAttempted(message_id="M1", occurred_at=NOW, node="n", attempt=2, gateway="primary",
                            host="127.0.0.1", port=25, recipients=["a@example.test"], duration_ms=3,
                            results=[RecipientResult(recipient="a@example.test",
                                                     reply=SmtpReply(code=451, enhanced_code="4.3.0", text="busy"))])
    assert "a@example.test: 451 4.3.0 busy" in describe(att)
    assert "reason: 451 4.3.0 busy" in describe(deferred()) and "mail.retry.1s" in describe(deferred())


def test_describe_shows_records_lists_and_times_as_an_operator_reads_them_not_as_python_values():
    line = describe(routed())
    assert "route=(kind=primary destination=primary hosts=127.0.0.1:25)" in line
    assert "recipients=a@example.test,b@example.test" in line and "received_at=2023-11-14 22:12:20.000" in line
    assert "{'" not in line and "['" not in line and "body" not in line


def test_queue_shows_deferred_until_every_recipient_is_terminal():
    q = QueueView()
    q.apply(routed())
    assert [(r["destination"], r["tier"], r["recipients"]) for r in q.shape(NOW)] == [("primary", "active", 2)]
    q.apply(deferred())
    row = q.shape(NOW)[0]
    assert (row["tier"], row["messages"], row["oldest_age_s"], row["last_reason"]) == ("retry.1s", 1, 60,
                                                                                        "451 4.3.0 busy")
    q.apply(delivered(rcpts=("a@example.test",)))
    assert q.shape(NOW)[0]["recipients"] == 1
    q.apply(MessageBounced(message_id="M1", occurred_at=NOW, node="n", recipients=["b@example.test"], reason="550"))
    assert q.shape(NOW) == [] and render([]) == "queue is empty"


def test_queue_replayed_message_leaves_on_duplicate_suppressed():
    q = QueueView()
    q.apply(routed(rcpts=("a@example.test",)))
    q.apply(delivered())
    q.apply(routed(rcpts=("a@example.test",)))  # replayed
    assert len(q.shape(NOW)) == 1
    q.apply(DuplicateSuppressed(message_id="M1", occurred_at=NOW, node="n", recipients=["a@example.test"],
                                reason="already delivered"))
    assert q.shape(NOW) == []
    assert "TOTAL" in render([{"destination": "d", "tier": "active", "messages": 1, "recipients": 1,
                                "oldest_age_s": 5, "oldest_message_id": "M", "last_reason": ""}])


def test_replay_selection_and_reinjection():
    cfg = parse_config({"delivery": {"retry_schedule_s": [1, 2]}})
    assert expected_event(cfg, "mail.received") == "MessageReceived"
    assert expected_event(cfg, "mail.retry.2s") == "MessageRouted"
    for bad in ("mail.events", "mail.delivered", "mail.retry.5s"):
        with pytest.raises(ReplayError):
            expected_event(cfg, bad)
    req = ReplayRequest(topic="mail.received", reason="r", since_ms=NOW, message_id="M1")
    assert selected(req, "MessageReceived", received("M1"))
    assert not selected(req, "MessageReceived", received("M2"))
    assert not selected(req, "MessageReceived", received("M1", body=None))  # the audit copy has no body
    assert reinjection(req, received(), b"raw", NOW) == ("mail.received", "M1", b"raw")
    out = ReplayRequest(topic="mail.retry.1s", reason="r", from_offset=0, force_redeliver=True)
    topic, key, value = reinjection(out, routed(tier=1, not_before=NOW + 50_000), b"", NOW)
    again = decode(value)
    assert (topic, key, again.force_redeliver, again.not_before, again.body) == ("mail.outbound", "primary", True,
                                                                                NOW, b"body")
    assert not decode(reinjection(ReplayRequest(topic="mail.outbound", reason="r", from_offset=0),
                                  routed(), b"", NOW)[2]).force_redeliver
    assert out.range_text() == "offset 0 to end"
