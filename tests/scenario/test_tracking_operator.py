"""Operator commands answered by the tracking store, end to end (real broker, stages, `mailgate tracker`, SQLite):
`quarantine release|delete` find a held message through the store, never scanning the topics; and a message with
one recipient delivered and one refused 550 by the primary is a partial delivery in `search`, `trace` and the
admin API, each recipient with its own state."""
from __future__ import annotations

import json
import smtplib

import pytest

from tests.scenario.test_tracking import body, configure, mailgate, ok, start_tracker, wait_caught_up
from tests.scenario.test_walking_skeleton import queued_id, send

pytestmark = pytest.mark.scenario

SCANNED = "scanned mail.quarantine and mail.events instead"


@pytest.fixture
def tracked(gateway, primary, tmp_path):
    configure(gateway, primary, {"store": "sqlite", "sqlite_path": str(tmp_path / "tracking.sqlite3")})
    gateway.start_broker()
    gateway.start_all()
    start_tracker(gateway)
    return gateway


def quiet(gateway, *args: str):
    """Run `mailgate ARGS`; it must have read the store (no note about scanning the topics)."""
    done = mailgate(gateway, *args)
    assert SCANNED not in done.stderr and "not in the tracking store" not in done.stderr, done.stderr
    return done


def test_quarantine_release_and_delete_find_the_message_through_the_store(tracked, primary):
    gateway = tracked
    spam = b"X-Spam-Score: 15\r\n"
    keep = queued_id(send(gateway.smtp_port, "bob@example.test", body("spam-keep", spam))[1])
    drop = queued_id(send(gateway.smtp_port, "carol@example.test", body("spam-drop", spam))[1])
    for mid in (keep, drop):
        gateway.wait_events(mid, "MessageQuarantined")
    wait_caught_up(gateway)
    listed = quiet(gateway, "quarantine", "list")
    assert keep in listed.stdout and drop in listed.stdout and "2 message(s)" in listed.stdout

    released = quiet(gateway, "quarantine", "release", keep, "--operator", "alice")
    assert released.returncode == 0, released.stdout + released.stderr
    got = primary.wait_for(1, timeout_s=90)
    assert got[0].rcpt_tos == ["bob@example.test"] and b"spam-keep" in got[0].data
    assert gateway.wait_events(keep, "MessageDelivered")[-4:] == [
        "QuarantineReleased", "MessageRouted", "DeliveryAttempted", "MessageDelivered"]
    deleted = quiet(gateway, "quarantine", "delete", drop, "--operator", "bob")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    last = gateway.events(drop)[-1]
    assert type(last).__name__ == "MessageDiscarded" and last.reason == "quarantine_delete" and last.operator == "bob"

    wait_caught_up(gateway)  # the store now knows both left the quarantine
    for mid in (keep, drop):
        again = quiet(gateway, "quarantine", "release", mid)
        assert again.returncode == 1 and "not in quarantine" in again.stdout
    assert "0 message(s) in quarantine" in quiet(gateway, "quarantine", "list").stdout
    # The scan, asked for outright, says the same.
    assert "0 message(s) in quarantine" in ok(gateway, "quarantine", "list", "--from-log")
    assert [m.rcpt_tos for m in primary.messages] == [["bob@example.test"]]


def test_one_recipient_delivered_and_one_refused_is_a_partial_delivery(tracked, primary):
    gateway = tracked

    async def refuse_one(server, session, envelope, address, rcpt_options):
        if address == "gone@example.test":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    primary.handler.handle_RCPT = refuse_one  # aiosmtpd finds handle_* hooks on each new connection
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        assert s.rcpt("bob@example.test")[0] == 250 and s.rcpt("gone@example.test")[0] == 250
        mid = queued_id(s.data(body("partial-1"))[1].decode())
    gateway.wait_events(mid, "MessageDelivered")
    gateway.wait_events(mid, "MessageBounced")
    wait_caught_up(gateway)

    rows = json.loads(ok(gateway, "search", "--json", "--recipient", "gone@example.test"))
    assert [r["message_id"] for r in rows] == [mid] and rows[0]["state"] == "partial"
    assert {r["recipient"]: r["state"] for r in rows[0]["recipient_states"]} == {
        "bob@example.test": "delivered", "gone@example.test": "bounced"}
    assert [r["message_id"] for r in json.loads(ok(gateway, "search", "--json", "--state", "partial"))] == [mid]
    text = ok(gateway, "search", "--recipient", "bob@example.test")
    assert "partial" in text and "gone@example.test (bounced)" in text and "bob@example.test (delivered)" in text

    trace = ok(gateway, "trace", mid)
    tail = trace.splitlines()[-3:]
    assert tail[0] == "state: partial"
    assert tail[1].startswith("  bob@example.test: delivered")
    assert tail[2].startswith("  gone@example.test: bounced (") and "550" in tail[2]
    assert trace == ok(gateway, "trace", mid, "--from-log")  # the log folded the same way
