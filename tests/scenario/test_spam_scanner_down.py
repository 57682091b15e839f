"""spamd down while mail flows. "retry": the message waits in Kafka (the processor retries with backoff) and is
delivered, scored, once spamd is back. "pass": it is delivered unscored and MessageClassified records the error."""
from __future__ import annotations

import re
import time

import pytest

from tests.scenario.test_spam_actions import PLAIN, spam_config, strip_added
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.spamd import SPAMD, free_port, running_spamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(SPAMD is None, reason="spamd is not installed (peer missing: spamd)")]

CLEAN = {"none": [{"action": "add_header", "header_name": "X-Clean", "header_value": "yes"}]}


def wait_log(gateway, text: str, timeout_s: float = 90) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = gateway.logs()
        if text in logs:
            return logs
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in the logs within {timeout_s}s:\n{gateway.logs()[-3000:]}")


def test_retry_mode_holds_the_message_until_spamd_returns_then_delivers_it_once(gateway, primary, tmp_path):
    with running_spamd(tmp_path) as spamd:
        gateway.configure(spam_config(spamd.port, primary.port, [("in", "example.test", CLEAN)],
                                      on_scanner_failure="retry"))
        gateway.start_broker()
        gateway.start_all()
        spamd.stop()

        mid = queued_id(send(gateway.smtp_port, "bob@example.test", PLAIN)[1])
        wait_log(gateway, f"spam scan of {mid} failed (try 2)")
        assert primary.messages == [] and gateway.event_types(mid) == ["MessageReceived"]

        spamd.start()
        got = primary.wait_for(1, timeout_s=120)
        assert re.match(rb"X-Clean: yes\r\nX-Spam-Level: \**\r\nX-Spam-Score: ", got[0].data)
        assert strip_added(got[0].data, 3) == PLAIN
        types = gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
        assert types == ["MessageReceived", "MessageClassified", "MessageRouted", "DeliveryAttempted",
                         "MessageDelivered"]
        classified = gateway.events(mid)[1]
        assert classified.scores[0].score is not None and classified.scores[0].error is None
        assert len(primary.messages) == 1


def test_pass_mode_delivers_unscored_with_the_scanner_error_in_the_event(gateway, primary, tmp_path):
    nobody_listens = free_port()
    gateway.configure(spam_config(nobody_listens, primary.port, [("in", "example.test", CLEAN)],
                                  on_scanner_failure="pass"))
    gateway.start_broker()
    gateway.start_all()

    mid = queued_id(send(gateway.smtp_port, "bob@example.test", PLAIN)[1])
    got = primary.wait_for(1, timeout_s=120)
    assert strip_added(got[0].data, 1) == PLAIN and got[0].data.startswith(b"X-Clean: yes\r\nReceived: ")
    gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    classified = gateway.events(mid)[1]
    assert type(classified).__name__ == "MessageClassified" and classified.level == "none"
    assert classified.scores[0].score is None and f"127.0.0.1:{nobody_listens}" in classified.scores[0].error
