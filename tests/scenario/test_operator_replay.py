"""`mailgate replay` against the real broker: after the primary is fixed, replaying mail.received delivers the
message that had bounced, does not deliver again the one that had been delivered, and leaves ReplayRequested."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.scenario.test_walking_skeleton import inbound_config, queued_id, send
from tests.support.harness import ROOT, send_marker

pytestmark = pytest.mark.scenario


def replay(gateway, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "replay", *args, "--config", str(gateway.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_replay_after_fix_delivers_the_bounced_message_and_not_the_delivered_one_again(gateway, primary):
    broken = {"on": True}
    primary.handler.script = lambda rcpts: ("550 5.7.1 mailbox disabled"
                                            if broken["on"] and "carol@example.test" in rcpts else None)
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()
    since = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat()

    delivered = queued_id(send(gateway.smtp_port, "bob@example.test")[1])
    bounced = queued_id(send(gateway.smtp_port, "carol@example.test")[1])
    gateway.wait_events(delivered, "MessageDelivered", timeout_s=90)
    gateway.wait_events(bounced, "MessageBounced", timeout_s=90)
    assert [m.rcpt_tos for m in primary.messages] == [["bob@example.test"]]

    dry = replay(gateway, "--topic", "mail.received", "--since", since, "--dry-run", "--reason", "look first")
    assert "would replay mail.received" in dry.stdout and bounced in dry.stdout and delivered in dry.stdout
    assert "ReplayRequested" not in [type(e).__name__ for e in gateway.events()]

    broken["on"] = False  # the primary's operator re-enabled the mailbox
    done = replay(gateway, "--topic", "mail.received", "--since", since, "--reason", "carol's mailbox re-enabled")
    assert "replayed" in done.stdout and "records" in done.stderr  # progress on stderr

    gateway.wait_events(bounced, "MessageDelivered", timeout_s=90)
    gateway.wait_events(delivered, "DuplicateSuppressed", timeout_s=90)
    marker = send_marker(gateway.smtp_port, "bob@example.test")  # a wrongful second delivery would come before it
    gateway.wait_events(marker, "MessageDelivered", timeout_s=90)
    primary.wait_for(3, timeout_s=60)
    rcpts = sorted(r for m in primary.messages if m.mail_from != "marker@sender.test" for r in m.rcpt_tos)
    assert rcpts == ["bob@example.test", "carol@example.test"], rcpts
    assert gateway.event_types(delivered).count("MessageDelivered") == 1
    requests = [e for e in gateway.events() if type(e).__name__ == "ReplayRequested"]
    assert len(requests) == 1
    r = requests[0]
    assert (r.topic, r.reason, r.force_redeliver) == ("mail.received", "carol's mailbox re-enabled", False)
    assert r.records >= 2 and r.range.startswith("since ") and r.operator
