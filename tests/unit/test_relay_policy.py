"""No open relay: the classic relay-test address forms from an unauthorised client are all refused."""
from __future__ import annotations

import pytest

from ingress.policy import RecipientPolicy
from ingress.replies import Verdict
from mailgate.core.config import parse_config

CFG = parse_config({
    "ingress": {"relay_networks": ["10.1.0.0/16", "192.0.2.1-192.0.2.9", "2001:db8::/32"]},
    "inbound_gateways": [{"name": "p", "mode": "domain_forward", "primary_addresses": ["10.0.0.1"],
                          "domain_verification": {"domains": ["example.test"]}}]})
POLICY = RecipientPolicy(CFG)
OUTSIDER = "203.0.113.7"

RELAY_FORMS = [
    "user@elsewhere.test", "user@[203.0.113.9]", "user%elsewhere.test@example.test", '"user@elsewhere.test"',
    '"user@elsewhere.test"@example.test', "user@elsewhere.test@example.test", "@example.test:user@elsewhere.test",
    "elsewhere.test!user", "elsewhere.test!user@example.test", "user@example.test.", "user@example.test@",
    "<user@elsewhere.test>", "user@EXAMPLE.TEST.elsewhere.test", "user@localhost", "user",
]


@pytest.mark.parametrize("address", RELAY_FORMS)
def test_relay_forms_from_outsider_are_denied(address):
    d = POLICY.decide(OUTSIDER, address)
    if address == "user@example.test.":  # trailing dot is the same domain: accepted, for the primary only
        assert d.accepted and d.direction == "inbound"
        return
    assert d.verdict is Verdict.RELAY_DENIED, address
    assert d.verdict.reply(addr=address).startswith("554 5.7.1")


def test_configured_domain_is_accepted_inbound():
    d = POLICY.decide(OUTSIDER, "Bob@Example.Test")
    assert d.accepted and d.direction == "inbound" and d.gateway.name == "p" and str(d.mailbox) == "Bob@example.test"


@pytest.mark.parametrize("client", ["10.1.2.3", "192.0.2.5", "2001:db8::5", "::ffff:10.1.0.1"])
def test_relay_networks_may_send_anywhere(client):
    d = POLICY.decide(client, "someone@elsewhere.test")
    assert d.accepted and d.direction == "outbound"


@pytest.mark.parametrize("client", ["10.2.0.1", "192.0.2.10", "2001:db9::1"])
def test_clients_just_outside_relay_networks_are_not_relays(client):
    assert POLICY.decide(client, "someone@elsewhere.test").verdict is Verdict.RELAY_DENIED
