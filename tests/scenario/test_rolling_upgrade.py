"""A rolling upgrade (issues 14, 35): records an earlier release wrote are processed by the current code, 0 dead letters.

Run twice: with the oldest and with the newest kept writer schema of each event (schemas/released/KEPT, via
tests.support.old_release), so an upgrade from the first commit of main and from the last one are both shown.
Before any current stage starts, the topics hold what that release left behind, encoded with those writer
schemas: the gateway in mail.config, a message accepted but not yet processed in mail.received, one routed in
mail.outbound, one waiting in a retry tier, one held in mail.quarantine, one the old egress already delivered (mail.outbound + mail.delivered), and the audit trail of all
of them plus one finished message in mail.events. The current stages must deliver each pending message exactly
once, not the one already delivered, trace every one, release the held one, and replay an old record without
re-delivering it — with nothing in mail.dlq.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import subprocess
import sys
import time

import pytest

import schemas
from mailgate.core import kafka, topics
from mailgate.core.config import parse_config
from mailgate.core.config_events import config_key
from mailgate.ops.settings.config_writer import diff
from mailgate.core.ids import new_message_id, now_ms
from mailgate.ops.audit.reader import read_topic
from tests.scenario.test_walking_skeleton import inbound_config
from tests.support.harness import ROOT, free_port
from schemas.codec import header_of
from tests.support.old_release import ERAS, encode_old, kept_schema

pytestmark = pytest.mark.scenario

DAY_MS = 86400 * 1000


def body(mid: str, what: str) -> bytes:
    return (f"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: {what}\r\n"
            f"Message-ID: <{mid}@sender.test>\r\n\r\nwritten by the previous release\r\n").encode()


def received(mid: str, what: str, at: int) -> schemas.MessageReceived:
    data = body(mid, what)
    return schemas.MessageReceived(
        message_id=mid, occurred_at=at, node="old", direction="inbound", inbound_gateway="primary",
        client_address="192.0.2.1", client_helo="client.test", mail_from="alice@sender.test",
        rcpt_to=["bob@example.test"], size_bytes=len(data), body_sha256=hashlib.sha256(data).hexdigest(), body=data)


def routed(mid: str, what: str, at: int, port: int, **kw) -> schemas.MessageRouted:
    return schemas.MessageRouted(
        message_id=mid, occurred_at=at, node="old", direction="inbound",
        route=schemas.Route(kind="primary", destination="primary", candidates=[], hosts=[f"127.0.0.1:{port}"]),
        mail_from="alice@sender.test", recipients=["bob@example.test"], received_at=at, not_before=at,
        expires_at=at + 5 * DAY_MS, body=body(mid, what), **kw)


def audit(record):
    return dataclasses.replace(record, body=None)


def old_release_records(cfg, port: int, ids: dict[str, str], era: str) -> list[tuple[str, str, bytes | None]]:
    """(topic, key, value) an earlier release left: every value encoded with the `era` kept schema of its event."""
    def old(record) -> bytes:
        return encode_old(record, era)
    at = now_ms() - 60_000
    out = [(topics.CONFIG, config_key(e.kind, e.name), old(e))
           for e in diff({}, parse_config(inbound_config(port)), operator="old-release", node="old")]
    r = received(ids["received"], "from mail.received", at)
    out += [(topics.RECEIVED, r.message_id, old(r)), (topics.EVENTS, r.message_id, old(audit(r)))]
    for name, topic, extra in (("outbound", topics.OUTBOUND, {}), ("delivered", topics.OUTBOUND, {}),
                               ("retry", topics.retry_topic(1), {"attempt": 1, "retry_tier": 0})):
        rr = received(ids[name], f"from {topic}", at)
        ro = routed(ids[name], f"from {topic}", at, port, **extra)
        out += [(topics.EVENTS, ro.message_id, old(audit(rr))),
                (topics.EVENTS, ro.message_id, old(audit(ro))), (topic, "primary#0", old(ro))]
    out.append((topics.DELIVERED, f"{ids['delivered']}|bob@example.test", b"1"))  # the old egress delivered it
    q = routed(ids["held"], "from mail.quarantine", at, port)
    held = schemas.MessageQuarantined(message_id=q.message_id, occurred_at=at, node="old", level="High",
                                      total_score=12.5, headers="Subject: from mail.quarantine\r\n",
                                      routed=old(q))
    out += [(topics.EVENTS, q.message_id, old(audit(received(ids["held"], "held", at)))),
            (topics.QUARANTINE, q.message_id, old(held)),
            (topics.EVENTS, q.message_id, old(dataclasses.replace(held, routed=None)))]
    done = ids["finished"]
    attempt = schemas.DeliveryAttempted(
        message_id=done, occurred_at=at, node="old", attempt=1, gateway="primary", host="127.0.0.1", port=port,
        recipients=["bob@example.test"], duration_ms=12, results=[schemas.RecipientResult(
            recipient="bob@example.test", reply=schemas.SmtpReply(code=550, enhanced_code="5.7.1", text="spam"))])
    out += [(topics.EVENTS, done, old(audit(received(done, "finished", at)))),
            (topics.EVENTS, done, old(attempt)),
            (topics.EVENTS, done, old(schemas.MessageDiscarded(message_id=done, occurred_at=at + 1,
                                                                      node="old", reason="spam", headers="")))]
    return out


async def write(cfg, records) -> None:
    p = kafka.producer(cfg, "old-release")
    await p.start()
    try:
        for topic, key, value in records:
            await (await p.send(topic, value, key=key.encode()))
    finally:
        await p.stop()


def cli(gateway, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dead_letters(cfg) -> list:
    async def read() -> list:
        return [e async for _, e in read_topic(cfg, topics.DLQ)]
    return asyncio.run(read())


def subjects(primary) -> list[str]:
    return sorted(line.split(b": ", 1)[1].decode() for m in primary.messages for line in m.data.split(b"\r\n")
                  if line.startswith(b"Subject: "))


@pytest.mark.parametrize("era", ERAS)
def test_records_of_an_earlier_release_are_delivered_once_traced_released_and_replayed(gateway, primary, era):
    # The file names a dead primary port: only the old release's GatewayConfigured in mail.config has the right one.
    gateway.configure(inbound_config(free_port()))
    gateway.start_broker()
    ids = {k: new_message_id() for k in ("received", "outbound", "delivered", "retry", "held", "finished")}
    records = old_release_records(gateway.cfg, primary.port, ids, era)
    written = {value[:10] for topic, _, value in records if topic == topics.RECEIVED}
    assert written == {header_of(kept_schema("MessageReceived", era))}  # the era's writer schema, not today's
    asyncio.run(write(gateway.cfg, records))
    gateway.start_all()

    for k in ("received", "outbound", "retry"):
        gateway.wait_events(ids[k], "MessageDelivered", timeout_s=120)
    gateway.wait_events(ids["delivered"], "DuplicateSuppressed", timeout_s=60)
    assert "released" in cli(gateway, "quarantine", "release", ids["held"], "--operator", "upgrader")
    gateway.wait_events(ids["held"], "MessageDelivered", timeout_s=90)

    cli(gateway, "replay", "--topic", topics.RECEIVED, "--from-offset", "0", "--message-id", ids["received"],
        "--reason", "rolling upgrade check")
    gateway.wait_events(ids["received"], "DuplicateSuppressed", timeout_s=90)

    expected = ["from mail.outbound", "from mail.quarantine", "from mail.received", f"from {topics.retry_topic(1)}"]
    deadline = time.monotonic() + 5  # a wrongful extra delivery would land within this
    while time.monotonic() < deadline and subjects(primary) == expected:
        time.sleep(0.5)
    assert subjects(primary) == expected  # each pending message exactly once; the delivered one not again
    for k, last in (("received", "DuplicateSuppressed"), ("held", "MessageDelivered"),
                    ("retry", "MessageDelivered"), ("finished", "MessageDiscarded")):
        trace = cli(gateway, "trace", ids[k])
        assert "MessageReceived" in trace and last in trace, trace
    assert "550 5.7.1 spam" in cli(gateway, "trace", ids["finished"])
    assert dead_letters(gateway.cfg) == []
    assert "UndecodableRecord" not in gateway.logs() and "unknown schema fingerprint" not in gateway.logs()
