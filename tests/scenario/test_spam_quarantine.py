"""Quarantine end to end with a real spamd: High mail is held in mail.quarantine; `mailgate quarantine` (run as a
process against the test's config file) lists it, shows it, releases one (delivered exactly once) and deletes the
other (MessageDiscarded, nothing delivered)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.scenario.test_spam_actions import SPAM, spam_config
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.harness import ROOT
from tests.support.spamd import SPAMD, running_spamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(SPAMD is None, reason="spamd is not installed (peer missing: spamd)")]


@pytest.fixture
def spamd(tmp_path):
    with running_spamd(tmp_path) as server:
        yield server


def quarantine(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "quarantine", *args, "--config",
                           str(gateway.config_path)], cwd=str(ROOT), capture_output=True, text=True, timeout=120)


def test_quarantined_spam_is_released_once_or_deleted_by_the_operator(gateway, primary, spamd):
    hold = {"high": [{"action": "add_header", "header_name": "X-Held", "header_value": "yes"},
                     {"action": "quarantine"}]}
    gateway.configure(spam_config(spamd.port, primary.port, [("hold", "example.test", hold)]))
    gateway.start_broker()
    gateway.start_all()

    keep = queued_id(send(gateway.smtp_port, "bob@example.test", SPAM)[1])
    drop = queued_id(send(gateway.smtp_port, "carol@example.test", SPAM)[1])
    for mid in (keep, drop):
        assert gateway.wait_events(mid, "MessageQuarantined", timeout_s=90) == [
            "MessageReceived", "MessageClassified", "MessageQuarantined"]

    listed = quarantine(gateway, "list")
    assert listed.returncode == 0, listed.stderr
    assert keep in listed.stdout and drop in listed.stdout and "2 message(s)" in listed.stdout
    shown = quarantine(gateway, "show", keep)
    assert shown.returncode == 0 and "X-Held: yes" in shown.stdout and "bob@example.test" in shown.stdout

    released = quarantine(gateway, "release", keep, "--operator", "alice")
    assert released.returncode == 0, released.stdout + released.stderr
    got = primary.wait_for(1, timeout_s=90)
    assert got[0].rcpt_tos == ["bob@example.test"] and got[0].data.startswith(b"X-Held: yes\r\n")
    assert gateway.wait_events(keep, "MessageDelivered", timeout_s=90)[-4:] == [
        "QuarantineReleased", "MessageRouted", "DeliveryAttempted", "MessageDelivered"]
    assert [e.operator for e in gateway.events(keep) if type(e).__name__ == "QuarantineReleased"] == ["alice"]

    again = quarantine(gateway, "release", keep)
    assert again.returncode == 1 and "not in quarantine" in again.stdout

    deleted = quarantine(gateway, "delete", drop, "--operator", "bob")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    last = gateway.events(drop)[-1]
    assert type(last).__name__ == "MessageDiscarded" and last.reason == "quarantine_delete"
    assert last.operator == "bob"
    assert "0 message(s) in quarantine" in quarantine(gateway, "list").stdout
    assert quarantine(gateway, "release", drop).returncode == 1
    # The deleted message never reached the primary; the released one arrived once.
    assert [m.rcpt_tos for m in primary.messages] == [["bob@example.test"]]
