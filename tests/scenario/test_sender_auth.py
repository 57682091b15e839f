"""SPF, DKIM and DMARC end to end: through ingress, the processor and egress on a real broker, with dnsmasq as DNS.

Outbound: egress signs relayed mail, and what the gateway received verifies with dkimpy against the DNS server.
Inbound: each message reaches the primary with our Authentication-Results, the results are in mail.events and
`mailgate trace`, and a DMARC p=reject failure gets the spam level the configuration gives it.
"""
from __future__ import annotations

import subprocess
import sys

import dkim
import pytest

from egress.dkim_signing import DkimSigner
from mailgate.core.config import DkimSigningConfig, DnsConfig
from mailgate.mail.authres.dkim_keys import public_record
from mailgate.mail.authres.resolver import Resolver
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.dns_server import DnsServer
from tests.support.harness import ROOT, SmtpPrimary
from tests.support.secrets import DKIM_PRIVATE_KEY as KEY

pytestmark = pytest.mark.scenario

RECORDS = {
    "sel1._domainkey.sender.test": [public_record(KEY)],
    "sel1._domainkey.signed.test": [public_record(KEY)],
    "signed.test": ["v=spf1 ip4:192.0.2.1 -all"],
    "_dmarc.signed.test": ["v=DMARC1; p=reject"],
    "spf-soft.test": ["v=spf1 ip4:192.0.2.1 ~all"],
}


@pytest.fixture
def dns_server():
    with DnsServer(RECORDS) as server:
        yield server


def _message(from_domain: str, tag: str) -> bytes:
    return (f"From: Alice <alice@{from_domain}>\r\nTo: bob@inside.test\r\nSubject: {tag}\r\n"
            f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{tag}@{from_domain}>\r\n\r\n"
            f"Hello from {tag}.\r\n").encode()


def test_egress_signs_and_the_delivered_bytes_verify_against_the_dns_server(gateway, dns_server, tmp_path):
    key_file = tmp_path / "dkim-sender.pem"
    key_file.write_bytes(KEY)
    out = SmtpPrimary().start()
    try:
        gateway.configure({"ingress": {"relay_networks": ["127.0.0.1"]},
                           "outbound_gateways": [{"name": "out", "address": "127.0.0.1", "port": out.port}],
                           "dkim_signing": {"keys": [{"domain": "sender.test", "selector": "sel1",
                                                      "private_key": {"file": str(key_file)}}]}})
        gateway.start_broker()
        gateway.start_all()
        code, reply = send(gateway.smtp_port, "carol@far.test", _message("sender.test", "signed-out"))
        assert code == 250, reply
        delivered = out.wait_for(1)[0].data
    finally:
        out.stop()
    resolver = Resolver(DnsConfig(**dns_server.config()))
    assert delivered.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test;")
    assert dkim.verify(delivered, dnsfunc=lambda name, timeout=5: resolver.txt(name.decode())[0])
    assert not dkim.verify(delivered.replace(b"Hello from", b"Hello frum"),
                           dnsfunc=lambda name, timeout=5: resolver.txt(name.decode())[0])


def test_inbound_results_in_header_events_trace_and_spam_level(gateway, primary, dns_server):
    gateway.configure({
        "spam": {"enabled": True, "scorers": []},
        "sender_auth": {"enabled": True, "dns": dns_server.config(), "dmarc_reject_action": "high"},
        "inbound_gateways": [{"name": "in", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                              "primary_port": primary.port,
                              "domain_verification": {"domains": ["inside.test"]},
                              "spam_actions": {"high": [{"action": "prefix_subject", "text": "[DMARC-FAIL]"}]}}]})
    gateway.start_broker()
    gateway.start_all()
    signer = DkimSigner(DkimSigningConfig.model_validate(
        {"keys": [{"domain": "signed.test", "selector": "sel1", "private_key": KEY.decode()}]}))
    signed = signer.sign(_message("signed.test", "good"))
    tampered = signer.sign(_message("signed.test", "bad")).replace(b"Hello from bad", b"Hello from evil")
    ids = {tag: queued_id(send(gateway.smtp_port, "bob@inside.test", body, f"alice@{dom}")[1])
           for tag, dom, body in (("good", "signed.test", signed), ("bad", "signed.test", tampered),
                                  ("soft", "spf-soft.test", _message("spf-soft.test", "soft")))}
    got = {m.data.split(b"Message-ID: <", 1)[1].split(b"@")[0].decode(): m.data for m in primary.wait_for(3)}

    def results(data: bytes) -> str:
        head = data.split(b"\r\nReceived:")[0].replace(b"\r\n\t", b" ").decode()  # fields above our Received
        found = [f for f in head.split("\r\n") if f.startswith("Authentication-Results: gw.test; ")]
        assert len(found) == 1, head
        return found[0]

    assert "spf=fail" in results(got["good"]) and "dkim=pass header.d=signed.test" in results(got["good"])
    assert "dmarc=pass (p=reject) header.from=signed.test" in results(got["good"])
    assert "dkim=fail" in results(got["bad"]) and "dmarc=fail (p=reject)" in results(got["bad"])
    assert b"Subject: [DMARC-FAIL] bad" in got["bad"] and b"Subject: good" in got["good"]
    assert "spf=softfail smtp.mailfrom=alice@spf-soft.test" in results(got["soft"])
    assert "dkim=none" in results(got["soft"]) and "dmarc=none" in results(got["soft"])

    for tag, (spf, dkim_result, dmarc, level) in {"good": ("fail", "pass", "pass", "none"),
                                                  "bad": ("fail", "fail", "fail", "high"),
                                                  "soft": ("softfail", "none", "none", "none")}.items():
        gateway.wait_events(ids[tag], "MessageDelivered")
        events = {type(e).__name__: e for e in gateway.events(ids[tag])}
        auth = events["SenderAuthenticated"]
        assert (auth.spf, auth.dkim, auth.dmarc) == (spf, dkim_result, dmarc), tag
        classified = events["MessageClassified"]
        assert classified.level == level, tag
        assert [s.scorer for s in classified.scores] == ["sender_auth"]
    trace = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "trace", ids["bad"], "--config",
                            str(gateway.config_path)], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert "SenderAuthenticated" in trace.stdout and "dmarc=fail" in trace.stdout, trace.stdout + trace.stderr
