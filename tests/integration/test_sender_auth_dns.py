"""SPF, DKIM and DMARC against a real DNS server (dnsmasq on loopback), and DKIM signing verified by dkimpy.

Nothing is mocked: the resolver is dnspython asking dnsmasq on a non-53 port; SPF is pyspf, DKIM is dkimpy.
"""
from __future__ import annotations

import time

import dkim
import pytest

from egress.dkim_signing import DkimSigner
from mailgate.core.config import DkimSigningConfig, DnsConfig, parse_config
from mailgate.mail.authres.dkim_keys import generate_ed25519_key, public_record
from mailgate.mail.authres.resolver import DnsTempError, Resolver
from processors.sender_auth import SenderAuthPolicy
from processors.sender_auth.dkim_check import check_dkim
from processors.sender_auth.spf_check import check_spf
from schemas import MessageReceived
from tests.support.dns_server import DnsServer
from tests.support.harness import free_port
from tests.support.secrets import DKIM_PRIVATE_KEY as KEY

ED_KEY = generate_ed25519_key()
"""An Ed25519 key (RFC 8463) made for this module."""

RECORDS = {
    "spf-pass.test": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.spf-pass.test": ["v=DMARC1; p=quarantine"],
    "spf-fail.test": ["v=spf1 ip4:192.0.2.1 -all"],
    "_dmarc.spf-fail.test": ["v=DMARC1; p=reject"],
    "spf-soft.test": ["v=spf1 ip4:192.0.2.1 ~all"],
    "signed.test": ["v=spf1 ip4:192.0.2.1 -all"],
    "_dmarc.signed.test": ["v=DMARC1; p=reject; adkim=s"],
    "sel1._domainkey.signed.test": [public_record(KEY)],
    "ed1._domainkey.ed.test": [public_record(ED_KEY)],
}


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(RECORDS) as server:
        yield server


@pytest.fixture
def resolver(dns_server):
    return Resolver(DnsConfig(**dns_server.config()))


@pytest.mark.parametrize("domain, expected", [
    ("spf-pass.test", "pass"), ("spf-fail.test", "fail"), ("spf-soft.test", "softfail"), ("spf-none.test", "none")])
def test_spf_results_from_the_dns_server(resolver, domain, expected):
    assert check_spf(resolver, "127.0.0.1", "mx.client.test", f"alice@{domain}").result == expected


def test_dns_down_is_a_temperror_not_a_crash():
    dead = Resolver(DnsConfig(nameservers=["127.0.0.1"], port=free_port(), timeout_s=0.5))
    with pytest.raises(DnsTempError):
        dead.txt("spf-pass.test")
    assert check_spf(dead, "127.0.0.1", "h.test", "a@spf-pass.test").result == "temperror"
    signed = _signed()
    assert [r.result for r in check_dkim(dead, signed)] == ["temperror"]


def test_answers_are_cached_for_their_ttl(resolver, dns_server):
    assert resolver.txt("spf-pass.test")
    dns_server.stop()  # the cache answers without the server
    try:
        assert resolver.txt("spf-pass.test") == [b"v=spf1 ip4:127.0.0.1 -all"]
    finally:
        dns_server.start()


def _message(from_domain: str) -> bytes:
    return (f"From: Alice <alice@{from_domain}>\r\nTo: bob@inside.test\r\nSubject: hello\r\n"
            f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@{from_domain}>\r\n\r\nHi Bob.\r\n").encode()


def _unfold(message: bytes) -> str:
    return message.split(b"\r\n\r\n")[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ").decode()


def _signed() -> bytes:
    signer = DkimSigner(DkimSigningConfig.model_validate(
        {"keys": [{"domain": "signed.test", "selector": "sel1", "private_key": KEY.decode()}]}))
    return signer.sign(_message("signed.test"))


def test_dkim_valid_signature_passes_and_tampered_fails(resolver):
    signed = _signed()
    assert [(r.result, r.domain, r.selector) for r in check_dkim(resolver, signed)] == [("pass", "signed.test", "sel1")]
    tampered = signed.replace(b"Hi Bob.", b"Hi Bob, send money.")
    assert [r.result for r in check_dkim(resolver, tampered)] == ["fail"]
    assert check_dkim(resolver, _message("signed.test")) == []


def test_ed25519_signature_by_egress_passes_against_the_dns_server_and_tampered_fails(resolver):
    signer = DkimSigner(DkimSigningConfig.model_validate(
        {"keys": [{"domain": "ed.test", "selector": "ed1", "private_key": ED_KEY.decode()}]}))
    signed = signer.sign(_message("ed.test"))
    assert signed.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=ed.test;")
    assert [(r.result, r.domain, r.selector) for r in check_dkim(resolver, signed)] == [("pass", "ed.test", "ed1")]
    assert [r.result for r in check_dkim(resolver, signed.replace(b"Hi Bob.", b"Hi Bob, send money."))] == ["fail"]
    assert RECORDS["ed1._domainkey.ed.test"][0].startswith("v=DKIM1; k=ed25519; p=")


def test_egress_signature_verifies_with_dkimpy_against_the_dns_server(resolver):
    signed = _signed()
    assert _unfold(signed).startswith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signed.test; ")
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: resolver.txt(name.decode())[0])
    assert "h=from : subject : date : message-id : to : from : subject : date : message-id : to;" in \
        _unfold(signed).lower()


def _received(body: bytes, mail_from: str) -> MessageReceived:
    return MessageReceived(message_id="m1", occurred_at=0, node="t", direction="inbound", inbound_gateway="gw",
                           client_address="127.0.0.1", client_helo="mx.client.test", client_auth=None, tls=None,
                           mail_from=mail_from, rcpt_to=["bob@inside.test"], size_bytes=len(body),
                           body_sha256="", body=body)


def _policy(dns_server, **sender_auth):
    cfg = parse_config({"ingress": {"hostname": "gw.test"}, "sender_auth": {
        "enabled": True, "dns": dns_server.config(), **sender_auth}})
    return SenderAuthPolicy(cfg, "t")


@pytest.mark.parametrize("domain, spf, dmarc, score", [
    ("spf-pass.test", "pass", "pass", 0.0),
    ("spf-fail.test", "fail", "fail", 5.0),  # spf_fail 2 + dmarc_fail 3
    ("spf-soft.test", "softfail", "none", 1.0),
    ("spf-none.test", "none", "none", 0.5),
])
async def test_results_in_authentication_results_event_and_score(dns_server, domain, spf, dmarc, score):
    decision = await _policy(dns_server)(_received(_message(domain), f"alice@{domain}"))
    event = decision.outputs[0].record
    assert (event.spf, event.dkim, event.dmarc, event.score) == (spf, "none", dmarc, score)
    head = _unfold(decision.body)
    assert head.startswith(f"Authentication-Results: gw.test; spf={spf} smtp.mailfrom=alice@{domain}")
    assert f"; dmarc={dmarc} " in head.split("\r\nFrom:")[0]
    assert decision.disposition == "deliver" and decision.score == score


async def test_dkim_aligned_pass_makes_dmarc_pass_despite_spf_fail_and_forged_header_is_removed(dns_server):
    forged = b"Authentication-Results: gw.test; dkim=pass header.d=bank.test; dmarc=pass\r\n"
    body = forged + _signed()
    decision = await _policy(dns_server)(_received(body, "alice@signed.test"))
    event = decision.outputs[0].record
    assert (event.spf, event.dkim, event.dmarc, event.dmarc_policy) == ("fail", "pass", "pass", "reject")
    assert event.forged_headers_removed == 1 and b"bank.test" not in decision.body
    assert b"dkim=pass header.d=signed.test header.s=sel1" in decision.body


async def test_dmarc_reject_actions_discard_or_raise_the_spam_level(dns_server):
    received = _received(_message("spf-fail.test"), "alice@spf-fail.test")
    discard = await _policy(dns_server, dmarc_reject_action="discard")(received)
    assert discard.disposition == "discard"
    assert [type(o.record).__name__ for o in discard.outputs] == ["SenderAuthenticated", "MessageDiscarded"]
    assert discard.outputs[1].record.reason == "dmarc_reject"
    high = await _policy(dns_server, dmarc_reject_action="high")(received)
    assert high.disposition == "deliver" and high.score == 5.0 + 10.0  # + spam.high_threshold
    assert high.outputs[0].record.action == "high"


async def test_dns_down_gives_temperror_results_and_the_message_flows():
    cfg = parse_config({"ingress": {"hostname": "gw.test"}, "sender_auth": {
        "enabled": True, "dns": {"nameservers": ["127.0.0.1"], "port": free_port(), "timeout_s": 0.5}}})
    began = time.monotonic()
    decision = await SenderAuthPolicy(cfg, "t")(_received(_signed(), "alice@signed.test"))
    event = decision.outputs[0].record
    assert (event.spf, event.dkim, event.dmarc) == ("temperror", "temperror", "temperror")
    assert decision.disposition == "deliver" and time.monotonic() - began < 10


async def test_on_dns_failure_pass_scores_temperror_as_pass():
    cfg = parse_config({"ingress": {"hostname": "gw.test"}, "sender_auth": {
        "enabled": True, "on_dns_failure": "pass", "scores": {"temperror": 7.0},
        "dns": {"nameservers": ["127.0.0.1"], "port": free_port(), "timeout_s": 0.5}}})
    decision = await SenderAuthPolicy(cfg, "t")(_received(_message("spf-pass.test"), "alice@spf-pass.test"))
    assert decision.outputs[0].record.spf == "temperror" and decision.score == 0.0


def test_a_key_that_cannot_sign_stops_the_signer_at_startup():
    with pytest.raises(Exception):  # noqa: B017 (whatever dkimpy raises for a bad key)
        DkimSigner(DkimSigningConfig.model_validate(
            {"keys": [{"domain": "x.test", "selector": "s", "private_key": "not a key"}]}))
