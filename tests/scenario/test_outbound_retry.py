"""Outbound retry and bounce, end to end: a 4xx is deferred to a retry tier and delivered once later; a 5xx bounces
with exactly one DSN to the sender, and a DSN that bounces (null sender) makes no further DSN.

Real broker and stage processes; the gateway is a real aiosmtpd server whose replies are scripted. The DSN is
routed like any mail: the sender's domain is an inbound domain here, so it reaches that domain's primary server.
"""
from __future__ import annotations

import smtplib

import pytest

from tests.support.harness import SmtpPrimary

pytestmark = pytest.mark.scenario


def send(port: int, sender: str, rcpt: str, subject: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail(sender)
        code, _ = s.rcpt(rcpt)
        assert code == 250
        code, reply = s.data(f"From: <{sender or 'nobody@x.test'}>\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]


@pytest.fixture
def relay_gw():
    s = SmtpPrimary().start()
    yield s
    s.stop()


def config(gw_port: int, sender_primary_port: int | None = None) -> dict:
    cfg: dict = {"ingress": {"relay_networks": ["127.0.0.1"]},
                 "outbound_gateways": [{"name": "relay", "address": "127.0.0.1", "port": gw_port}]}
    if sender_primary_port:
        cfg["inbound_gateways"] = [{
            "name": "home", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "primary_port": sender_primary_port,
            "domain_verification": {"mode": "specified_domains", "domains": ["sender.test"]}}]
    return cfg


def test_4xx_then_250_is_deferred_then_delivered_once(relay_gw, gateway):
    calls = []

    def script(rcpts):
        calls.append(rcpts)
        return "451 4.3.0 try later" if len(calls) == 1 else None

    relay_gw.handler.script = script
    gateway.configure(config(relay_gw.port))
    gateway.start_broker()
    gateway.start_all()
    mid = send(gateway.smtp_port, "alice@sender.test", "bob@far.test", "retry me")
    types = gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    assert types == ["MessageReceived", "MessageRouted", "DeliveryAttempted", "DeliveryDeferred",
                     "DeliveryAttempted", "MessageDelivered"]
    deferred = [e for e in gateway.events(mid) if type(e).__name__ == "DeliveryDeferred"][0]
    assert deferred.reason == "451 4.3.0 try later" and deferred.retry_topic == "mail.retry.1s"
    delivered = [e for e in gateway.events(mid) if type(e).__name__ == "MessageDelivered"][0]
    assert delivered.attempt == 2 and delivered.gateway == "relay"
    assert len(relay_gw.messages) == 1 and relay_gw.messages[0].rcpt_tos == ["bob@far.test"]


def test_5xx_bounces_with_one_dsn_to_the_sender_and_none_when_the_dsn_itself_bounces(relay_gw, primary, gateway):
    relay_gw.handler.script = lambda rcpts: "550 5.1.1 no such user"
    gateway.configure(config(relay_gw.port, sender_primary_port=primary.port))
    gateway.start_broker()
    gateway.start_all()

    mid = send(gateway.smtp_port, "alice@sender.test", "ghost@far.test", "bounce me")
    gateway.wait_events(mid, "MessageBounced")
    bounced = [e for e in gateway.events(mid) if type(e).__name__ == "MessageBounced"][0]
    assert bounced.recipients == ["ghost@far.test"] and bounced.reason == "550 5.1.1 no such user"
    assert bounced.dsn_message_id
    dsn_types = gateway.wait_events(bounced.dsn_message_id, "MessageDelivered")
    assert dsn_types.count("MessageDelivered") == 1
    dsn = primary.wait_for(1)[0]
    assert dsn.mail_from == "<>" and dsn.rcpt_tos == ["alice@sender.test"]
    assert b"report-type=delivery-status" in dsn.data and b"ghost@far.test" in dsn.data
    assert b"5.1.1" in dsn.data

    # A sender whose domain is not ours: its DSN goes out through the gateway, is refused with 5xx too, and that
    # bounce of a bounce (sender <>) makes no further DSN.
    far_mid = send(gateway.smtp_port, "carol@elsewhere.test", "ghost2@far.test", "bounce of a bounce")
    gateway.wait_events(far_mid, "MessageBounced")
    far_bounce = [e for e in gateway.events(far_mid) if type(e).__name__ == "MessageBounced"][0]
    assert far_bounce.dsn_message_id
    gateway.wait_events(far_bounce.dsn_message_id, "MessageBounced")
    dsn_bounce = [e for e in gateway.events(far_bounce.dsn_message_id) if type(e).__name__ == "MessageBounced"][0]
    assert dsn_bounce.recipients == ["carol@elsewhere.test"] and dsn_bounce.dsn_message_id is None
    assert len(primary.messages) == 1  # still only the first DSN
    assert relay_gw.messages == []
    dsns = [e for e in gateway.events() if type(e).__name__ == "MessageReceived" and e.mail_from == ""]
    assert sorted(e.message_id for e in dsns) == sorted([bounced.dsn_message_id, far_bounce.dsn_message_id])
