"""Adding an egress replica in the middle of a batch: the partitions move, and every message is delivered once.

Real broker and stage processes; a slow-ish real aiosmtpd gateway keeps the first replica busy when the second
joins. On the rebalance the first replica finishes and commits its in-flight batches before giving partitions up,
so nothing is sent twice (no kill here, so not even the RFC 1047 window applies).
"""
from __future__ import annotations

import smtplib
import time
from collections import Counter

import pytest

from tests.support.harness import SmtpPrimary

pytestmark = pytest.mark.scenario

TOTAL = 100


@pytest.fixture
def slow_gw():
    s = SmtpPrimary().start()
    s.handler.script = lambda rcpts: time.sleep(0.05)  # about one message per 50 ms; returns None: accept
    yield s
    s.stop()


def send(port: int, numbers: range) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        for n in numbers:
            s.mail("alice@sender.test")
            s.rcpt(f"r{n}@far.test")
            code, reply = s.data(f"Subject: {n}\r\n\r\nbody\r\n".encode())
            assert code == 250, reply


def test_second_egress_replica_joining_mid_batch_delivers_each_message_once(slow_gw, gateway):
    gateway.configure({"ingress": {"relay_networks": ["127.0.0.1"]},
                       "outbound_gateways": [{"name": "slow", "address": "127.0.0.1", "port": slow_gw.port}]})
    gateway.start_broker()
    for stage in ("processor", "ingress", "egress"):
        gateway.start(stage)
    send(gateway.smtp_port, range(TOTAL))
    slow_gw.wait_for(20, timeout_s=120)
    second = gateway.start("egress")
    log_path = gateway.workdir / "egress-1.log"
    sent, deadline = TOTAL, time.monotonic() + 90
    while "attempt id=" not in log_path.read_text() and time.monotonic() < deadline:
        send(gateway.smtp_port, range(sent, sent + 10))  # more mail until the new replica delivers some
        sent += 10
        time.sleep(1)
    assert second.poll() is None and "attempt id=" in log_path.read_text(), "the second replica got no partition"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len({m.rcpt_tos[0] for m in slow_gw.messages}) < sent:
        time.sleep(0.2)
    counts = Counter(m.rcpt_tos[0] for m in slow_gw.messages)
    assert set(counts) == {f"r{n}@far.test" for n in range(sent)}
    assert [r for r, c in counts.items() if c > 1] == []
