"""Operator audit tools against the real broker: `trace` shows every attempt with its reply text, `queue` shows
what is deferred and then not, `events` filters the log and survives an undecodable record."""
from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer

from mailgate.ops.queue.view import show_queue
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.harness import ROOT, SmtpPrimary, free_port

pytestmark = pytest.mark.scenario


def gateway_entry(name: str, port: int, domain: str) -> dict:
    return {"name": name, "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": port,
            "domain_verification": {"mode": "specified_domains", "domains": [domain]}}


def cli(gateway, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def write_garbage(gateway) -> None:
    p = AIOKafkaProducer(bootstrap_servers=gateway.cfg.kafka.bootstrap_servers)
    await p.start()
    try:
        await p.send_and_wait("mail.events", b"\x00garbage, not avro", key=b"garbage")
    finally:
        await p.stop()


def test_trace_queue_and_events_show_deferrals_with_reply_texts(gateway, primary):
    later_port = free_port()  # nothing listens here yet: mail for later.test waits in the queue
    gateway.configure({"inbound_gateways": [gateway_entry("primary", primary.port, "example.test"),
                                            gateway_entry("later", later_port, "later.test")]})
    calls: list[int] = []

    def busy_twice(rcpts: list[str]) -> str | None:
        calls.append(1)
        return "451 4.3.0 busy" if len(calls) <= 2 else None

    primary.handler.script = busy_twice
    gateway.start_broker()
    gateway.start_all()

    mid = queued_id(send(gateway.smtp_port, "bob@example.test")[1])
    gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    trace = cli(gateway, "trace", mid).splitlines()
    deferred = [ln for ln in trace if "DeliveryDeferred" in ln]
    attempts = [ln for ln in trace if "DeliveryAttempted" in ln]
    assert len(deferred) == 2 and all("busy" in ln and "mail.retry." in ln for ln in deferred), trace
    assert len(attempts) == 3 and all("bob@example.test: 451 4.3.0 busy" in ln for ln in attempts[:2]), trace
    assert "bob@example.test: 250" in attempts[2] and "Ok: stored" in attempts[2], trace
    events = [ln for ln in trace if ln[:1].isdigit()]  # the timeline; per-recipient state lines follow it
    assert "MessageDelivered" in events[-1] and "state: delivered" in trace, trace

    waiting = queued_id(send(gateway.smtp_port, "carol@later.test")[1])
    gateway.wait_events(waiting, "DeliveryDeferred", timeout_s=90)
    shown = io.StringIO()
    asyncio.run(show_queue(gateway.cfg, as_json=True, out=shown))
    rows = json.loads(shown.getvalue())
    assert [(r["destination"], r["messages"], r["recipients"]) for r in rows] == [("later", 1, 1)], rows
    assert rows[0]["tier"].startswith("retry.") and rows[0]["oldest_message_id"] == waiting
    later = SmtpPrimary(port=later_port).start()
    try:
        later.wait_for(1, timeout_s=120)
        gateway.wait_events(waiting, "MessageDelivered", timeout_s=60)
    finally:
        later.stop()
    assert cli(gateway, "queue").strip() == "queue is empty"

    asyncio.run(write_garbage(gateway))
    only_deferred = cli(gateway, "events", "--type", "DeliveryDeferred").splitlines()
    assert any("UNDECODABLE" in ln and "no C3 01 marker" in ln for ln in only_deferred), only_deferred
    decoded = [ln for ln in only_deferred if "UNDECODABLE" not in ln]
    assert decoded and all("DeliveryDeferred" in ln for ln in decoded)
    assert sum(mid in ln for ln in decoded) == 2 and any(waiting in ln for ln in decoded)
    by_domain = cli(gateway, "events", "--domain", "later.test", "--since", "10m", "--json").splitlines()
    events = [json.loads(ln) for ln in by_domain]
    assert {e.get("message_id") for e in events if e["type"] != "Undecodable"} == {waiting}
    assert {"MessageReceived", "MessageRouted", "DeliveryDeferred", "MessageDelivered"} <= {e["type"] for e in events}
