"""Faults around ingress: a killed ingress promises nothing, and a killed broker loses no mail that got 250.

Real broker, real stage processes, real SMTP. Each test kills something with SIGKILL and checks what reached
mail.received and the recording primary.
"""
from __future__ import annotations

import asyncio
import smtplib
import socket
import time
import uuid

import pytest

from mailgate.ops.kafka import local_broker as broker

from mailgate.core import topics
from mailgate.ops.audit.reader import read_topic
from tests.support.traffic import Trickle, wait_until

pytestmark = pytest.mark.scenario


def inbound(primary_port: int) -> dict:
    return {"inbound_gateways": [{
        "name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
        "primary_port": primary_port, "domain_verification": {"mode": "specified_domains",
                                                              "domains": ["example.test"]}}],
        "ingress": {"publish_timeout_s": 3}}


def published(g, sender: str) -> list:
    async def read() -> list:
        return [e async for _, e in read_topic(g.cfg, topics.RECEIVED) if e.mail_from == sender]
    return asyncio.run(read())


def _line(f) -> bytes:
    return f.readline()


def test_ingress_killed_during_data_publishes_nothing_and_never_said_250(gateway, primary):
    gateway.configure(inbound(primary.port))
    gateway.start_broker()
    ingress = gateway.start("ingress")
    sender = f"killed-{uuid.uuid4().hex[:8]}@sender.test"
    sock = socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=60)
    replies = []
    try:
        f = sock.makefile("rb")
        assert _line(f).startswith(b"220 ")
        sock.sendall(b"HELO client.test\r\n")
        assert _line(f).startswith(b"250 ")
        for cmd in (f"MAIL FROM:<{sender}>", "RCPT TO:<bob@example.test>", "DATA"):
            sock.sendall(cmd.encode() + b"\r\n")
            replies.append(_line(f))
        assert replies[-1].startswith(b"354 ")
        sock.sendall(b"Subject: half\r\n\r\n" + b"half a message\r\n" * 1000)
        gateway.kill(ingress)  # SIGKILL to the process group, mid-DATA
        sock.sendall(b"rest\r\n.\r\n")
        rest = f.read()  # EOF (or a reset) — anything but a reply
        replies.append(rest)
        f.close()
    except ConnectionResetError:
        replies.append(b"<reset>")
    finally:
        sock.close()
    assert not any(r.startswith(b"250 2.0.0") for r in replies[2:]), replies
    assert replies[-1] in (b"", b"<reset>"), replies
    # A restarted ingress works, and the killed transaction left nothing behind.
    gateway.start("ingress")
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=60) as s:
        s.ehlo("client.test")
        code, _ = s.noop()
        assert code == 250
    assert published(gateway, sender) == []


def test_broker_killed_and_restarted_under_trickle_loses_no_accepted_mail(gateway, primary):
    gateway.configure(inbound(primary.port))
    gateway.start_broker()
    gateway.start_all()
    trickle = Trickle(gateway.smtp_port)
    trickle.start()
    try:
        wait_until(lambda: trickle.count(250) >= 5, 120, "5 accepted messages before the fault")
        broker.stop(gateway.cfg, timeout_s=0)  # SIGTERM immediately followed by SIGKILL
        accepted_before = trickle.count(250)
        wait_until(lambda: trickle.count(451) >= 3, 120, "451 replies while the broker is down")
        gateway.start_broker()
        wait_until(lambda: trickle.count(250) >= accepted_before + 5, 180, "250 again after the broker came back")
    finally:
        trickle.halt.set()
        trickle.join(90)
    results = trickle.snapshot()
    accepted = {r.sender for r in results if r.code == 250}
    refused = [(r.code, r.text) for r in results if r.code != 250]
    assert all(c == 451 and m.startswith("4.3.0") for c, m in refused), refused
    wait_until(lambda: accepted <= {m.mail_from for m in primary.messages}, 240, "every accepted message at the primary")
    arrived = [m.mail_from for m in primary.messages]
    dupes = len(arrived) - len(set(arrived))
    extra = set(arrived) - accepted
    print(f"trickle: {len(results)} sent, {len(accepted)} got 250, {len(refused)} got 451; "
          f"at primary: {len(set(arrived))} distinct, {dupes} duplicates, {len(extra)} that had 451")
    assert dupes == 0, arrived  # no stage crashed: a broker outage alone must not duplicate anything
    # A message told 451 that was stored anyway is explained in the audit log (TempfailedMessageStored), so the
    # copy a retrying client sends is not an unexplained duplicate.
    if extra:
        deadline = time.monotonic() + 60
        while True:
            stored = {e.mail_from for e in gateway.events() if type(e).__name__ == "TempfailedMessageStored"}
            if extra <= stored or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert extra <= stored, (extra, stored)
