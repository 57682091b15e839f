"""egress.outcome: replies of one attempt → delivered / deferred (with retry tier) / bounced (with one DSN) facts."""
from __future__ import annotations

from egress.outcome import OutcomePolicy
from mailgate.mail.smtp_reply import Reply
from mailgate.core import topics
from mailgate.core.config import parse_config
from schemas import MessageRouted, Route

NOW = 1_700_000_000_000
BODY = b"From: a@sender.test\r\nSubject: hi\r\n\r\nbody\r\n"


def policy(**cfg) -> OutcomePolicy:
    return OutcomePolicy(parse_config({"delivery": {"retry_schedule_s": [1, 2], "helo_name": "gw.test"}, **cfg}),
                         "n1")


def routed(mail_from: str = "a@sender.test", rcpts=("x@far.test", "y@far.test"), retry_tier: int = 0,
           expires_at: int = NOW + 3_600_000) -> MessageRouted:
    return MessageRouted(message_id="01MID", occurred_at=NOW - 1000, node="n0", direction="outbound",
                         route=Route(kind="gateway", destination="gw1", candidates=["gw1", "gw2"], hosts=[]),
                         mail_from=mail_from, recipients=list(rcpts), received_at=NOW - 5000, not_before=0,
                         expires_at=expires_at, attempt=0, retry_tier=retry_tier, force_redeliver=False, body=BODY)


def kinds(outputs) -> list[tuple[str, str]]:
    return [(o.topic, o.record if isinstance(o.record, bytes) else type(o.record).__name__) for o in outputs]


def test_all_delivered_gives_one_event_naming_every_recipient():
    m = routed()
    out = policy().outcome(m, [(r, Reply(250, "2.0.0", "ok")) for r in m.recipients], gateway="gw1",
                           host="127.0.0.1:25", attempt=1, now=NOW)
    assert kinds(out) == [(topics.EVENTS, "MessageDelivered")]  # the index's records are the index's (settle)
    assert out[0].record.recipients == ["x@far.test", "y@far.test"]
    assert out[0].record.reply_text == "250 2.0.0 ok"


def test_4xx_defers_only_the_failed_recipient_to_the_next_tier():
    m = routed()
    out = policy().outcome(m, [("x@far.test", Reply(250, None, "ok")), ("y@far.test", Reply(451, "4.3.0", "later"))],
                           gateway="gw1", host="h", attempt=1, now=NOW)
    assert [k for _, k in kinds(out)][:1] == ["MessageDelivered"]
    deferred, retry = out[-2].record, out[-1]
    assert type(deferred).__name__ == "DeliveryDeferred" and deferred.recipients == ["y@far.test"]
    assert retry.topic == "mail.retry.2s" and deferred.retry_topic == "mail.retry.2s"
    assert retry.record.recipients == ["y@far.test"] and retry.record.not_before == NOW + 2000
    assert retry.record.retry_tier == 1 and retry.record.attempt == 1 and retry.key == "gw1"


def test_last_retry_tier_repeats():
    out = policy().outcome(routed(retry_tier=1), [("x@far.test", Reply(421, None, "busy"))], gateway="gw1",
                           host="h", attempt=3, now=NOW)
    assert out[-1].topic == "mail.retry.2s" and out[-1].record.retry_tier == 1


def test_5xx_bounces_with_one_dsn_into_mail_received_from_the_null_sender():
    out = policy().outcome(routed(rcpts=["x@far.test"]), [("x@far.test", Reply(550, "5.1.1", "no such user"))],
                           gateway="gw1", host="h", attempt=1, now=NOW)
    assert kinds(out) == [(topics.RECEIVED, "MessageReceived"), (topics.EVENTS, "MessageReceived"),
                          (topics.EVENTS, "MessageBounced")]
    dsn = out[0].record
    assert dsn.mail_from == "" and dsn.rcpt_to == ["a@sender.test"] and dsn.direction == "outbound"
    assert b"5.1.1" in dsn.body and out[2].record.dsn_message_id == dsn.message_id


def test_dsn_for_one_of_our_domains_is_routed_inbound():
    cfg = {"inbound_gateways": [{"name": "home", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                 "domain_verification": {"domains": ["sender.test"]}}]}
    out = policy(**cfg).outcome(routed(rcpts=["x@far.test"]), [("x@far.test", Reply(550, None, "no"))],
                                gateway="gw1", host="h", attempt=1, now=NOW)
    assert out[0].record.direction == "inbound" and out[0].record.inbound_gateway == "home"


def test_no_dsn_for_the_null_sender():
    out = policy().outcome(routed(mail_from="", rcpts=["x@far.test"]), [("x@far.test", Reply(554, None, "no"))],
                           gateway="gw1", host="h", attempt=1, now=NOW)
    assert kinds(out) == [(topics.EVENTS, "MessageBounced")] and out[0].record.dsn_message_id is None


def test_transient_failure_after_the_queue_lifetime_expires_with_a_dsn():
    out = policy().outcome(routed(rcpts=["x@far.test"], expires_at=NOW - 1), [("x@far.test", Reply(451, None, "x"))],
                           gateway="gw1", host="h", attempt=9, now=NOW)
    assert [k for _, k in kinds(out)] == ["MessageReceived", "MessageReceived", "MessageExpired"]
    assert out[2].record.dsn_message_id == out[0].record.message_id


def with_dsn(m, *recipients) -> MessageRouted:
    import dataclasses
    from schemas import DsnRecipient
    return dataclasses.replace(m, dsn_ret="FULL", dsn_envid="env-1", dsn_recipients=[
        DsnRecipient(recipient=r, notify=list(n), orcpt=o) for r, n, o in recipients])


def test_notify_never_bounces_without_a_dsn_and_full_returns_the_message_to_the_others():
    m = with_dsn(routed(), ("x@far.test", ["NEVER"], None), ("y@far.test", [], "rfc822;Y@far.test"))
    out = policy().outcome(m, [(r, Reply(550, "5.1.1", "no such user")) for r in m.recipients], gateway="gw1",
                           host="h", attempt=1, now=NOW)
    assert kinds(out) == [(topics.RECEIVED, "MessageReceived"), (topics.EVENTS, "MessageReceived"),
                          (topics.EVENTS, "MessageBounced")]
    body = out[0].record.body
    assert b"Final-Recipient: rfc822; x@far.test" not in body and b"Original-Recipient: rfc822; Y@far.test" in body
    assert b"Content-Type: message/rfc822" in body and b"\r\nbody\r\n" in body  # RET=FULL
    none = policy().outcome(with_dsn(routed(rcpts=["x@far.test"]), ("x@far.test", ["NEVER"], None)),
                            [("x@far.test", Reply(550, "5.1.1", "no"))], gateway="gw1", host="h", attempt=1, now=NOW)
    assert kinds(none) == [(topics.EVENTS, "MessageBounced")] and none[0].record.dsn_message_id is None


def test_notify_success_gives_a_relayed_notice_only_when_the_next_hop_does_not_offer_dsn():
    m = with_dsn(routed(rcpts=["x@far.test"]), ("x@far.test", ["SUCCESS"], "rfc822;X@far.test"))
    ok = [("x@far.test", Reply(250, "2.0.0", "ok"))]
    relayed = policy().outcome(m, ok, gateway="gw1", host="h", attempt=1, now=NOW)
    assert kinds(relayed) == [(topics.EVENTS, "MessageDelivered"), (topics.RECEIVED, "MessageReceived"),
                              (topics.EVENTS, "MessageReceived")]
    body = relayed[1].record.body
    assert b"Action: relayed" in body and b"Original-Envelope-Id: env-1" in body
    assert b"text/rfc822-headers" in body and b"message/rfc822" not in body  # a success notice: headers only
    passed_on = policy().outcome(m, ok, gateway="gw1", host="h", attempt=1, now=NOW, next_hop_dsn=True)
    assert kinds(passed_on) == [(topics.EVENTS, "MessageDelivered")]
