"""The walking skeleton, end to end through the real broker: SMTP in → Kafka → processors → egress → SMTP out."""
from __future__ import annotations

import smtplib

import pytest

pytestmark = pytest.mark.scenario

MESSAGE = (b"From: Alice <alice@sender.test>\r\nTo: Bob <bob@example.test>\r\nSubject: skeleton\r\n"
           b"Message-ID: <skeleton-1@sender.test>\r\n\r\nHello Bob.\r\n..a line that starts with a dot\r\n")


def inbound_config(primary_port: int) -> dict:
    return {"inbound_gateways": [{
        "name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
        "primary_port": primary_port,
        "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}]}


def send(port: int, rcpt: str, body: bytes = MESSAGE, sender: str = "alice@sender.test") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail(sender)
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg.decode()
        code, msg = s.data(body)
        return code, msg.decode()


def queued_id(reply: str) -> str:
    assert "queued as" in reply, reply
    return reply.rsplit(" ", 1)[1]


def test_message_reaches_primary_byte_identical_with_one_received_header(gateway, primary):
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()

    code, reply = send(gateway.smtp_port, "bob@example.test")
    assert code == 250 and reply.startswith("2.0.0 Ok: queued as ")
    mid = queued_id(reply)

    got = primary.wait_for(1)[0]
    assert got.rcpt_tos == ["bob@example.test"] and got.mail_from == "alice@sender.test"
    lines = got.data.split(b"\r\n")
    assert lines[0].startswith(b"Received: from client.test ([127.0.0.1])")
    folded = 1
    while lines[folded].startswith((b"\t", b" ")):
        folded += 1
    # Exactly one header was added (ours, folded over several lines); the rest is the client's data, byte for byte.
    assert b"\r\n".join(lines[folded:]) == MESSAGE
    assert mid.encode() in got.data  # the queue id in the Received header is the event key

    types = gateway.wait_events(mid, "MessageDelivered")
    assert types == ["MessageReceived", "MessageRouted", "DeliveryAttempted", "MessageDelivered"]
    # ingress checked the line endings, the processor passed that on: egress skipped its own check
    assert [e.body_crlf_only for e in gateway.events(mid)[:2]] == [True, True]


def test_relay_to_unconfigured_domain_is_refused_at_rcpt_and_nothing_published(gateway, primary):
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start("ingress")

    code, reply = send(gateway.smtp_port, "victim@elsewhere.test")
    assert code == 554 and reply.startswith("5.7.1 ") and "Relay access denied" in reply
    events = gateway.events()
    assert [type(e).__name__ for e in events] == ["RecipientRejected"]
    assert events[0].reason == "relay_denied" and events[0].recipient == "victim@elsewhere.test"


def test_broker_down_gives_451_and_mail_after_it_returns_is_delivered(gateway, primary):
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()
    gateway.stop_broker()

    code, reply = send(gateway.smtp_port, "bob@example.test")
    assert code == 451 and reply.startswith("4.3.0 "), reply

    gateway.start_broker()
    for _ in range(60):  # ingress reconnects by itself; retry as a client would
        code, reply = send(gateway.smtp_port, "bob@example.test")
        if code == 250:
            break
    assert code == 250, reply
    got = primary.wait_for(1, timeout_s=90)
    assert len(got) == 1


def test_bounce_from_the_null_sender_is_accepted_and_delivered_with_empty_return_path(gateway, primary):
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()
    code, reply = send(gateway.smtp_port, "bob@example.test", sender="<>")
    assert code == 250, reply
    got = primary.wait_for(1)[0]
    assert got.mail_from in ("", "<>")
    mid = queued_id(reply)
    assert gateway.events(mid)[0].mail_from == ""
