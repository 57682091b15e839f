"""Spam levels end to end with a real spamd: GTUBE is High and gets that level's actions (tag, or delete), a plain
message is not marked and gets its own action; the header edits leave every other byte as the client sent it."""
from __future__ import annotations

import re

import pytest

from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.spamd import GTUBE, SPAMD, running_spamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(SPAMD is None, reason="spamd is not installed (peer missing: spamd)")]

PLAIN = (b"Date: Wed, 26 Nov 2025 14:00:00 +0000\r\nFrom: Alice <alice@sender.test>\r\n"
         b"To: Bob <bob@clean.test>\r\nSubject: Lunch tomorrow\r\n"
         b"Message-ID: <plain-1@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
         b"\r\nHi Bob,\r\n\r\nAre we still on for lunch tomorrow at noon?\r\n\r\nAlice\r\n")
SPAM = PLAIN.replace(b"Subject: Lunch tomorrow", b"Subject: Test").replace(b"plain-1", b"spam-1") + GTUBE + b"\r\n"


def gateway_entry(name: str, domain: str, port: int, actions: dict) -> dict:
    return {"name": name, "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": port,
            "domain_verification": {"mode": "specified_domains", "domains": [domain]}, "spam_actions": actions}


def spam_config(spamd_port: int, primary_port: int, gateways: list[tuple[str, str, dict]], **spam) -> dict:
    return {"spam": {"enabled": True, "scorers": [{"kind": "spamd", "port": spamd_port, "timeout_s": 60}], **spam},
            "inbound_gateways": [gateway_entry(n, d, primary_port, a) for n, d, a in gateways]}


def strip_added(data: bytes, added: int) -> bytes:
    """The message without the `added` header lines at its top and our (folded) Received header below them."""
    lines = data.split(b"\r\n")[added:]
    assert lines[0].startswith(b"Received: "), lines[:3]
    i = 1
    while lines[i].startswith((b"\t", b" ")):
        i += 1
    return b"\r\n".join(lines[i:])


@pytest.fixture
def spamd(tmp_path):
    with running_spamd(tmp_path) as server:
        yield server


def test_gtube_high_is_tagged_or_deleted_and_plain_mail_gets_the_not_marked_action(gateway, primary, spamd):
    tag = {"none": [{"action": "add_header", "header_name": "X-Clean", "header_value": "yes"}],
           "high": [{"action": "prefix_subject", "text": "[SPAM]"},
                    {"action": "add_header", "header_name": "X-Spam-Flag", "header_value": "YES"}]}
    gateway.configure(spam_config(spamd.port, primary.port, [("tag", "clean.test", tag),
                                                             ("drop", "drop.test", {"high": [{"action": "delete"}]})]))
    gateway.start_broker()
    gateway.start_all()

    plain_id = queued_id(send(gateway.smtp_port, "bob@clean.test", PLAIN)[1])
    spam_id = queued_id(send(gateway.smtp_port, "bob@clean.test", SPAM)[1])
    drop_id = queued_id(send(gateway.smtp_port, "carol@drop.test", SPAM)[1])

    got = {m.data.split(b"Message-ID: <", 1)[1][:6]: m for m in primary.wait_for(2, timeout_s=120)}
    plain, spam = got[b"plain-"].data, got[b"spam-1"].data
    assert re.match(rb"X-Clean: yes\r\nX-Spam-Level: \**\r\nX-Spam-Score: -?[0-9]+\.[0-9]\r\nReceived: ", plain)
    assert strip_added(plain, 3) == PLAIN
    assert spam.startswith(b"X-Spam-Flag: YES\r\nX-Spam-Level: " + b"*" * 50 + b"\r\nX-Spam-Score: 1")
    assert strip_added(spam, 3) == SPAM.replace(b"Subject: Test", b"Subject: [SPAM] Test")

    by_id = {mid: gateway.wait_events(mid, until, timeout_s=90)
             for mid, until in ((plain_id, "MessageDelivered"), (spam_id, "MessageDelivered"),
                                (drop_id, "MessageDiscarded"))}
    assert by_id[drop_id] == ["MessageReceived", "MessageClassified", "MessageDiscarded"]
    classified = [e for e in gateway.events(spam_id) if type(e).__name__ == "MessageClassified"][0]
    assert classified.level == "high" and classified.total_score >= 1000
    assert classified.scores[0].scorer == "spamd" and classified.scores[0].error is None
    assert classified.actions == ["standard_headers", "prefix_subject", "add_header:X-Spam-Flag"]
    plain_classified = [e for e in gateway.events(plain_id) if type(e).__name__ == "MessageClassified"][0]
    assert plain_classified.level == "none" and plain_classified.total_score < 3
    assert plain_classified.actions[-1] == "add_header:X-Clean"
    discarded = gateway.events(drop_id)[-1]
    assert discarded.reason == "spam_delete" and "Subject: Test" in discarded.headers
    assert "GTUBE" not in discarded.headers  # the header block only, never the body
    assert len(primary.messages) == 2  # the deleted one never went out (its events end with MessageDiscarded)
