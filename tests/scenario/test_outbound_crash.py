"""Regression: egress SIGKILLed in the middle of a batch, then restarted — every message delivered, none twice.

Real broker and stage processes; the gateway is a real aiosmtpd server made slow (its handler holds each DATA
for a moment), so the kill lands while a batch is partly delivered and its offsets are not yet committed. The
restarted egress re-reads those records and the delivered index (`mail.delivered`) suppresses the ones already
delivered (`DuplicateSuppressed`). The one duplicate the index cannot prevent is a DATA the gateway accepted
while egress was being killed, before it could record it (RFC 1047); the test allows only those, and only when the
audit log explains them (a later DeliveryAttempted names the recipient in outcome_unknown_recipients).
"""
from __future__ import annotations

import re
import smtplib
import time
from collections import Counter

import pytest

from tests.support.exactly_once import delivery_violations
from tests.support.harness import SmtpPrimary

pytestmark = pytest.mark.scenario

TOTAL = 100
QUEUE_ID = re.compile(rb"\b([0-9A-HJKMNP-TV-Z]{26})\b")


def queue_id(data: bytes) -> str:
    """Our message id, from the Received header ingress added."""
    found = QUEUE_ID.search(data)
    assert found, data[:300]
    return found.group(1).decode()


@pytest.fixture
def slow_gw():
    s = SmtpPrimary().start()

    def slow(rcpts):
        time.sleep(0.05)  # blocks the server's loop: the gateway takes about one message per 50 ms
        return None

    s.handler.script = slow
    yield s
    s.stop()


def send_all(port: int) -> list[str]:
    ids = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        for n in range(TOTAL):
            s.mail("alice@sender.test")
            s.rcpt(f"r{n}@far.test")
            code, reply = s.data(f"Subject: crash {n}\r\nX-N: {n}\r\n\r\nbody\r\n".encode())
            assert code == 250, reply
            ids.append(reply.decode().rsplit(" ", 1)[1])
    return ids


def test_egress_killed_mid_batch_delivers_everything_and_suppresses_duplicates(slow_gw, gateway, capsys):
    # Offsets committed rarely, so the restarted egress must re-read records it had already delivered.
    gateway.configure({"ingress": {"relay_networks": ["127.0.0.1"]}, "delivery": {"commit_interval_s": 120},
                       "outbound_gateways": [{"name": "slow", "address": "127.0.0.1", "port": slow_gw.port}]})
    gateway.start_broker()
    for stage in ("processor", "ingress"):
        gateway.start(stage)
    ids = send_all(gateway.smtp_port)  # all queued before egress starts: one big batch
    egress = gateway.start("egress")
    slow_gw.wait_for(30, timeout_s=120)
    gateway.kill(egress)
    at_kill = len(slow_gw.messages)
    gateway.start("egress")

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len({m.rcpt_tos[0] for m in slow_gw.messages}) < TOTAL:
        time.sleep(0.2)
    rcpts = Counter(m.rcpt_tos[0] for m in slow_gw.messages)
    assert set(rcpts) == {f"r{n}@far.test" for n in range(TOTAL)}
    for mid in ids:
        gateway.wait_events(mid, "MessageDelivered", timeout_s=60)

    events = gateway.events()
    delivered = Counter(e.message_id for e in events if type(e).__name__ == "MessageDelivered")
    suppressed = [e for e in events if type(e).__name__ == "DuplicateSuppressed"]
    twice = [r for r, c in rcpts.items() if c > 1]
    with capsys.disabled():
        print(f"\ncrash: {at_kill} at the gateway when killed, {len(suppressed)} DuplicateSuppressed, "
              f"{len(twice)} delivered twice (in flight at the kill), {len(slow_gw.messages)} received in all")
    assert set(delivered) == set(ids)
    # Delivered once per recipient, in the log and at the gateway; each extra MessageDelivered or copy is explained
    # by a DeliveryAttempted naming the recipient in outcome_unknown_recipients (tests/support/exactly_once.py).
    copies = [(queue_id(m.data), m.rcpt_tos[0]) for m in slow_gw.messages]
    assert delivery_violations(events, copies) == []
    assert suppressed, "the restarted egress re-read delivered records and should have suppressed them"
    # Only DATAs in flight at the kill (at most one per session, concurrency_per_destination) came twice:
    # their first copy arrived around the kill, never among the deliveries egress had already recorded.
    order = [m.rcpt_tos[0] for m in slow_gw.messages]
    limit = gateway.cfg.delivery.concurrency_per_destination
    assert max(rcpts.values()) <= 2 and len(twice) <= limit
    assert all(order.index(r) >= at_kill - limit for r in twice), (at_kill, [order.index(r) for r in twice])
