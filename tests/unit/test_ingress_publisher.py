"""ingress.publisher: the window where mail.received took the message and mail.events refused its audit copy.

The producer is a stand-in that acknowledges or fails each send as scripted (the Kafka side of this window is
forced for real in tests/scenario/test_ingress_audit_window.py).
"""
from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

import schemas
from ingress import publisher as pub
from ingress.publisher import PublishFailed, Publisher
from mailgate.core import topics
from mailgate.core.config import parse_config


class ScriptedProducer:
    """Records every send; a send to mail.events fails while `events_down` is set."""

    def __init__(self) -> None:
        self.events_down = True
        self.sent: list[tuple[str, str]] = []

    async def send(self, topic: str, value: bytes, key: bytes):
        fut = asyncio.get_running_loop().create_future()
        if topic == topics.EVENTS and self.events_down:
            fut.set_exception(KafkaTimeoutError())
        else:
            self.sent.append((topic, type(schemas.decode(value)).__name__))
            fut.set_result(None)
        return fut

    async def stop(self) -> None:
        pass


def received() -> schemas.MessageReceived:
    return schemas.MessageReceived(message_id="01M", occurred_at=1, node="n", direction="inbound",
                                   client_address="192.0.2.1", client_helo="h", mail_from="a@b.test",
                                   rcpt_to=["c@d.test"], size_bytes=1, body_sha256="x", body=b"x")


def publisher(timeout_s: float) -> tuple[Publisher, ScriptedProducer]:
    p = Publisher(parse_config({"ingress": {"publish_timeout_s": timeout_s}}))
    p._producer = ScriptedProducer()
    return p, p._producer


async def test_audit_copy_retried_within_the_timeout_then_250(monkeypatch):
    monkeypatch.setattr(pub, "AUDIT_RETRY_FIRST_S", 0.05)
    p, producer = publisher(5)
    asyncio.get_running_loop().call_later(0.2, setattr, producer, "events_down", False)
    await p.publish(received())  # no PublishFailed: the client gets 250
    assert producer.sent == [(topics.RECEIVED, "MessageReceived"), (topics.EVENTS, "MessageReceived")]
    await p.close()


async def test_audit_copy_still_refused_at_the_timeout_451_then_audit_and_tempfailed_when_kafka_takes_them(
        monkeypatch):
    monkeypatch.setattr(pub, "AUDIT_RETRY_FIRST_S", 0.05)
    p, producer = publisher(0.3)
    with pytest.raises(PublishFailed):
        await p.publish(received())
    assert producer.sent == [(topics.RECEIVED, "MessageReceived")]
    producer.events_down = False
    await asyncio.wait_for(asyncio.gather(*list(p._pending)), 5)
    assert producer.sent[1:] == [(topics.EVENTS, "MessageReceived"), (topics.EVENTS, "TempfailedMessageStored")]
    await p.close()


def refusal(n: int = 0) -> schemas.ConnectionRefused:
    return schemas.ConnectionRefused(message_id=f"01R{n}", occurred_at=1, node="n", client_address="192.0.2.9",
                                     check="pregreet", reason="pregreet", reply="521 5.5.1 Protocol error")


async def test_a_refusal_is_not_lost_while_kafka_is_down_and_the_reply_does_not_wait(monkeypatch):
    monkeypatch.setattr(pub, "AUDIT_RETRY_FIRST_S", 0.05)
    p, producer = publisher(5)
    scripted, p._producer = producer, None  # Kafka unreachable: no producer yet
    p.note_until_stored(refusal())  # returns at once
    await asyncio.sleep(0.2)
    p._producer = scripted
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, setattr, producer, "events_down", False)
    deadline = loop.time() + 5
    while not producer.sent and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert producer.sent == [(topics.EVENTS, "ConnectionRefused")]
    await p.close()


async def test_refusals_waiting_for_kafka_are_bounded(monkeypatch):
    monkeypatch.setattr(pub, "MAX_UNSTORED_REFUSALS", 3)
    p, _ = publisher(1)
    p._producer = None
    for n in range(5):
        p.note_until_stored(refusal(n))
    assert p._unstored == 3  # two given up (and counted), not kept
    await p.close()
