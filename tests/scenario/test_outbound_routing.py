"""Outbound routing end to end: relayed mail goes through the outbound gateways, never to an inbound primary.

Real broker, real stage processes, real aiosmtpd servers as the gateways. Round robin spreads mail evenly,
a specific-domain gateway takes its sender domain's mail, and a gateway whose port is closed loses nothing.
"""
from __future__ import annotations

import smtplib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.harness import SmtpPrimary, free_port

pytestmark = pytest.mark.scenario


def relay_config(gateways: list[dict]) -> dict:
    return {"ingress": {"relay_networks": ["127.0.0.1"]}, "outbound_gateways": gateways}


def rr(name: str, port: int, **kw) -> dict:
    return {"name": name, "address": "127.0.0.1", "port": port, **kw}


def message(n: int, sender: str) -> bytes:
    return (f"From: {sender}\r\nTo: rcpt{n}@far.test\r\nSubject: out {n}\r\n"
            f"Message-ID: <out-{n}@test>\r\n\r\nbody {n}\r\n").encode()


def send_batch(port: int, numbers: range, sender: str = "alice@sender.test") -> list[str]:
    """Send one message per number over a single SMTP connection; the queue ids."""
    ids = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        for n in numbers:
            s.mail(sender)
            code, _ = s.rcpt(f"rcpt{n}@far.test")
            assert code == 250
            code, reply = s.data(message(n, sender))
            assert code == 250, reply
            ids.append(reply.decode().rsplit(" ", 1)[1])
    return ids


def send_parallel(port: int, total: int, connections: int, sender: str = "alice@sender.test") -> list[str]:
    per = total // connections
    chunks = [range(i * per, (i + 1) * per) for i in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        return [mid for ids in pool.map(lambda c: send_batch(port, c, sender), chunks) for mid in ids]


@pytest.fixture
def three_gateways():
    servers = [SmtpPrimary().start() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


def wait_total(servers, count: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(len(s.messages) for s in servers) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"gateways got {[len(s.messages) for s in servers]}, expected {count} in all")


def test_relayed_mail_goes_out_through_the_gateway(gateway, primary):
    gateway.configure(relay_config([rr("gw1", primary.port)]))
    gateway.start_broker()
    gateway.start_all()
    mid = send_batch(gateway.smtp_port, range(1))[0]
    got = primary.wait_for(1)[0]
    assert got.mail_from == "alice@sender.test" and got.rcpt_tos == ["rcpt0@far.test"]
    types = gateway.wait_events(mid, "MessageDelivered")
    assert types == ["MessageReceived", "MessageRouted", "DeliveryAttempted", "MessageDelivered"]
    routed = [e for e in gateway.events(mid) if type(e).__name__ == "MessageRouted"][0]
    assert routed.route.kind == "gateway" and routed.route.candidates == ["gw1"]


def test_round_robin_spreads_300_messages_evenly_over_three_gateways(gateway, three_gateways, capsys):
    gateway.configure(relay_config([rr(f"gw{i}", s.port) for i, s in enumerate(three_gateways)]))
    gateway.start_broker()
    gateway.start_all()
    started = time.monotonic()
    ids = send_parallel(gateway.smtp_port, 300, 4)
    accepted_s = time.monotonic() - started
    wait_total(three_gateways, 300)
    delivered_s = time.monotonic() - started
    counts = [len(s.messages) for s in three_gateways]
    with capsys.disabled():
        print(f"\nround robin: counts={counts} accepted in {accepted_s:.1f}s, delivered in {delivered_s:.1f}s")
    assert len(set(ids)) == 300
    assert sum(counts) == 300
    assert all(90 <= c <= 110 for c in counts), counts
    rcpts = sorted(r for s in three_gateways for m in s.messages for r in m.rcpt_tos)
    assert rcpts == sorted(f"rcpt{n}@far.test" for n in range(300))


def test_specific_domain_gateway_takes_its_sender_domains_mail(gateway, three_gateways):
    pool_a, pool_b, special = three_gateways
    gateway.configure(relay_config([rr("a", pool_a.port), rr("b", pool_b.port),
                                    rr("special", special.port, mode="specific_domains",
                                       sender_domains=["vip.test"])]))
    gateway.start_broker()
    gateway.start_all()
    send_batch(gateway.smtp_port, range(10), sender="boss@vip.test")
    send_batch(gateway.smtp_port, range(10, 20), sender="clerk@plain.test")
    wait_total(three_gateways, 20)
    assert len(special.messages) == 10 and {m.mail_from for m in special.messages} == {"boss@vip.test"}
    assert len(pool_a.messages) == 5 and len(pool_b.messages) == 5
    assert {m.mail_from for m in pool_a.messages + pool_b.messages} == {"clerk@plain.test"}


def test_a_gateway_that_is_down_loses_nothing_its_mail_goes_to_the_others(gateway, three_gateways):
    closed = free_port()  # nothing listens here
    gateway.configure(relay_config([rr("down", closed)] + [rr(f"gw{i}", s.port)
                                                           for i, s in enumerate(three_gateways[:2])]))
    gateway.start_broker()
    gateway.start_all()
    ids = send_parallel(gateway.smtp_port, 60, 2)
    live = three_gateways[:2]
    wait_total(live, 60)
    rcpts = sorted(r for s in live for m in s.messages for r in m.rcpt_tos)
    assert rcpts == sorted(f"rcpt{n}@far.test" for n in range(60))  # each exactly once
    attempted_down = 0
    for mid in ids[:6]:
        types = gateway.wait_events(mid, "MessageDelivered")
        assert types.count("MessageDelivered") == 1 and "DeliveryDeferred" not in types
    events = gateway.events()
    attempted_down = [e for e in events if type(e).__name__ == "DeliveryAttempted" and e.gateway == "down"]
    assert attempted_down and all(e.error and e.error.startswith("connect:") for e in attempted_down)
