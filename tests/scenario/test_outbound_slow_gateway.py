"""Regression: one stuck gateway must not hold up delivery through the others.

Real broker and stage processes. The gateway `slow` (a real aiosmtpd server) holds its first DATA until the test
releases it; meanwhile mail for the gateway `fast`, keyed to another partition of mail.outbound (one partition per
destination here), must be
delivered. Before egress handled each partition's batch on its own, every partition waited for the slowest.
"""
from __future__ import annotations

import smtplib
import threading

import pytest
from aiokafka.partitioner import murmur2

from tests.support.harness import SmtpPrimary

pytestmark = pytest.mark.scenario


def partition_of(key: str, partitions: int = 2) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def send(port: int, sender: str, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        for n in range(count):
            s.mail(sender)
            s.rcpt(f"r{n}@far.test")
            code, reply = s.data(f"Subject: {n}\r\n\r\nbody\r\n".encode())
            assert code == 250, reply


@pytest.fixture
def servers():
    slow, fast = SmtpPrimary().start(), SmtpPrimary().start()
    entered, release = threading.Event(), threading.Event()

    def hold(rcpts):
        entered.set()
        release.wait(120)  # blocks only the slow server's own thread
        return None

    slow.handler.script = hold
    yield slow, fast, entered, release
    release.set()
    slow.stop()
    fast.stop()


def test_a_stuck_gateway_does_not_hold_up_mail_for_the_others(servers, gateway):
    slow, fast, entered, release = servers
    assert partition_of("slow") != partition_of("fast")  # the two destinations' mail is on different partitions
    gateway.configure({"ingress": {"relay_networks": ["127.0.0.1"]},
                       "delivery": {"partitions_per_destination": 1},  # key = gateway name: one partition each
                       "outbound_gateways": [
        {"name": "slow", "address": "127.0.0.1", "port": slow.port, "mode": "specific_domains",
         "sender_domains": ["slow.test"]},
        {"name": "fast", "address": "127.0.0.1", "port": fast.port}]})
    gateway.start_broker()
    gateway.start_all()

    send(gateway.smtp_port, "a@slow.test", 1)
    assert entered.wait(60), "egress never reached the slow gateway's DATA"
    send(gateway.smtp_port, "b@plain.test", 5)
    got = fast.wait_for(5, timeout_s=60)  # while the slow gateway still holds its message
    assert not release.is_set() and slow.messages == []
    assert {m.mail_from for m in got} == {"b@plain.test"}
    release.set()
    assert slow.wait_for(1, timeout_s=60)[0].mail_from == "a@slow.test"
