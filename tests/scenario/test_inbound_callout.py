"""SMTP user verification through the whole pipeline: unknown users of the primary are refused at RCPT."""
from __future__ import annotations

import pytest

from tests.scenario.test_walking_skeleton import send
from tests.support.harness import SmtpPrimary
from tests.unit.test_smtp_callout import Mailboxes

pytestmark = pytest.mark.scenario


def test_unknown_user_of_the_primary_is_refused_at_rcpt_and_known_user_delivered(gateway):
    primary = SmtpPrimary()
    mailboxes = Mailboxes()
    primary.controller.handler = mailboxes
    primary.start()
    try:
        gateway.configure({"inbound_gateways": [{
            "name": "fwd", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "primary_port": primary.port, "smtp_user_verification": True,
            "domain_verification": {"domains": ["example.test"]}}]})
        gateway.start_broker()
        gateway.start_all()
        code, reply = send(gateway.smtp_port, "nobody@example.test")
        assert code == 550 and reply.startswith("5.1.1 <nobody@example.test>: Recipient address rejected: User unknown")
        code, reply = send(gateway.smtp_port, "bob@example.test")
        assert code == 250, reply
        mid = reply.rsplit(" ", 1)[1]
        types = gateway.wait_events(mid, "MessageDelivered")
        assert "RecipientVerified" in types
        assert mailboxes.data_calls == 1  # the callouts sent no DATA; only the real delivery did
        verified = [e for e in gateway.events(mid) if type(e).__name__ == "RecipientVerified"]
        assert {e.method for e in verified} == {"smtp_callout"}
    finally:
        primary.stop()
