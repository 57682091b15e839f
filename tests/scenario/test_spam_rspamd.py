"""Spam scoring end to end with a real rspamd (Debian's package, loopback, offline configuration): GTUBE is rspamd's
reject, so High, and the gateway's High action deletes it; a clean message is delivered with rspamd's 0 score; and
rspamd saw the whole SMTP context of each message (client IP, HELO, envelope sender and recipient, our message id
as its queue id)."""
from __future__ import annotations

import pytest

from tests.scenario.test_spam_actions import PLAIN, SPAM, gateway_entry
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.rspamd import REJECT_SCORE, RSPAMD, running_rspamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(RSPAMD is None, reason="rspamd is not installed "
                                                                               "(peer missing: rspamd)")]


@pytest.fixture
def rspamd(tmp_path):
    with running_rspamd(tmp_path) as server:
        yield server


def classified(gateway, message_id: str):
    return [e for e in gateway.events(message_id) if type(e).__name__ == "MessageClassified"][0]


def test_gtube_is_deleted_as_high_and_clean_mail_is_delivered_with_rspamds_score(gateway, primary, rspamd):
    actions = {"none": [{"action": "add_header", "header_name": "X-Clean", "header_value": "yes"}],
               "high": [{"action": "delete"}]}
    gateway.configure({"spam": {"enabled": True, "scorers": [{"kind": "rspamd", "url": rspamd.url, "timeout_s": 60}]},
                       "inbound_gateways": [gateway_entry("rs", "clean.test", primary.port, actions)]})
    gateway.start_broker()
    gateway.start_all()

    plain_id = queued_id(send(gateway.smtp_port, "bob@clean.test", PLAIN)[1])
    spam_id = queued_id(send(gateway.smtp_port, "bob@clean.test", SPAM)[1])

    assert gateway.wait_events(spam_id, "MessageDiscarded", timeout_s=90) == [
        "MessageReceived", "MessageClassified", "MessageDiscarded"]
    spam = classified(gateway, spam_id)
    assert spam.level == "high" and spam.total_score >= REJECT_SCORE
    assert spam.scores[0].scorer == "rspamd" and spam.scores[0].error is None
    assert gateway.events(spam_id)[-1].reason == "spam_delete"

    assert gateway.wait_events(plain_id, "MessageDelivered", timeout_s=90)[-1] == "MessageDelivered"
    [delivered] = primary.wait_for(1, timeout_s=60)
    assert delivered.data.startswith(b"X-Clean: yes\r\nX-Spam-Level: \r\nX-Spam-Score: 0.0\r\nReceived: ")
    plain = classified(gateway, plain_id)
    assert plain.level == "none" and plain.total_score == 0.0 and plain.scores[0].error is None

    [spam_line] = rspamd.wait_scanned(spam_id)
    assert "action: reject" in spam_line and "GTUBE" in spam_line
    [plain_line] = rspamd.wait_scanned(plain_id)
    assert "action: no action" in plain_line
    assert ("MAILGATE_CONTEXT{ip=127.0.0.1;helo=client.test;from=alice@sender.test;rcpt=bob@clean.test;user=;"
            f"qid={plain_id};}}") in plain_line
