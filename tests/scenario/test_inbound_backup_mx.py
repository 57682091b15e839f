"""Backup MX: mail accepted while the primary is down waits in the retry tiers and is delivered exactly once when
the primary comes back; with `defer_while_primary_up`, clients are sent back to a primary that answers (451 4.7.1)."""
from __future__ import annotations

import smtplib
import time
from collections import defaultdict

import pytest

from mailgate.core.topics import RETRY_PREFIX
from tests.support.harness import SmtpPrimary, free_port, unconsumed

pytestmark = pytest.mark.scenario

MESSAGE = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: backup\r\n\r\nHello, message %d.\r\n"


def backup_mx(primary_port: int, **extra) -> dict:
    return {"inbound_gateways": [{
        "name": "bmx", "mode": "backup_mx", "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
        "domain_verification": {"domains": ["example.test"]}, **extra}]}


def rcpt_reply(port: int, rcpt: str = "bob@example.test") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        code, msg = s.rcpt(rcpt)
        return code, msg.decode()


def by_message(events) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[e.message_id].append(type(e).__name__)
    return out


def test_mail_for_a_down_primary_is_deferred_then_delivered_exactly_once(gateway):
    port = free_port()  # nothing listens here until the primary "comes back"
    gateway.configure(backup_mx(port))
    gateway.start_broker()
    gateway.start_all()

    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=60) as s:
        for i in range(50):
            assert s.sendmail("alice@sender.test", ["bob@example.test"], MESSAGE % i) == {}
    ids = [e.message_id for e in gateway.events() if type(e).__name__ == "MessageReceived"]
    assert len(ids) == 50

    deadline = time.monotonic() + 120
    while True:  # every message has been tried and deferred at least once
        seen = by_message(gateway.events())
        if all("DeliveryDeferred" in seen[m] for m in ids) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert all("DeliveryDeferred" in seen[m] for m in ids), {m: seen[m] for m in ids}

    primary = SmtpPrimary(port=port).start()
    try:
        started = time.monotonic()
        got = primary.wait_for(50, timeout_s=180)
        drain_s = time.monotonic() - started
        print(f"\nbackup MX drain: 50 messages delivered {drain_s:.1f} s after the primary came back")
        for m in ids:
            gateway.wait_events(m, "MessageDelivered", timeout_s=60)
        # Nothing may arrive twice: wait until egress has handled every record in the retry tiers (a second
        # delivery would come from one of them), then count.
        deadline = time.monotonic() + 120
        while unconsumed(gateway.cfg, "mailgate-egress", RETRY_PREFIX):
            assert time.monotonic() < deadline, "egress never drained the retry tiers"
            time.sleep(0.5)
        got = primary.messages
    finally:
        primary.stop()
    assert len(got) == 50
    bodies = sorted(m.data.split(b"Hello, message ", 1)[1] for m in got)
    assert bodies == sorted(b"%d.\r\n" % i for i in range(50))
    seen = by_message(gateway.events())
    for m in ids:
        types = seen[m]
        assert types.count("MessageDelivered") == 1, types
        assert types.index("DeliveryDeferred") < types.index("MessageDelivered"), types


def test_defer_while_primary_up_sends_clients_to_the_primary_until_it_is_down(gateway):
    port = free_port()
    gateway.configure(backup_mx(port, defer_while_primary_up=True))
    gateway.start_broker()
    gateway.start("ingress")

    primary = SmtpPrimary(port=port).start()
    try:
        code, reply = rcpt_reply(gateway.smtp_port)
        assert code == 451 and reply.startswith("4.7.1 "), reply
    finally:
        primary.stop()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the probe's answer is reused for a few seconds
        code, reply = rcpt_reply(gateway.smtp_port)
        if code == 250:
            break
        time.sleep(0.5)
    assert code == 250, reply
    rejected = [e for e in gateway.events() if type(e).__name__ == "RecipientRejected"]
    assert rejected and all(e.reason == "primary_up" and e.reply_code == 451 for e in rejected)
