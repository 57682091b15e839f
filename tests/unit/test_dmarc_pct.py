"""DMARC pct= (RFC 7489 6.6.4): the published policy applies to pct% of failing mail, the rest gets the next lower
policy; which messages is stable per message. The resolver is a stand-in (records in a dict): DNS itself is
tested against dnsmasq in tests/integration/test_sender_auth_dns.py."""
from __future__ import annotations

from collections import Counter

from processors.sender_auth.dkim_check import DkimResult
from processors.sender_auth.dmarc import check_dmarc
from processors.sender_auth.spf_check import SpfResult

FAIL_SPF = SpfResult("fail", "forged.test", "x@forged.test")
NO_DKIM: list[DkimResult] = []


class Records:
    def __init__(self, records: dict[str, str]) -> None:
        self.records = records

    def txt(self, name: str) -> list[bytes]:
        return [self.records[name].encode()] if name in self.records else []


def _message(i: int) -> bytes:
    return f"From: a@forged.test\r\nSubject: {i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode()


def _policies(record: str, n: int = 1000) -> Counter:
    dns = Records({"_dmarc.forged.test": record})
    return Counter((r.result, r.policy, r.sampled_out) for r in
                   (check_dmarc(dns, _message(i), FAIL_SPF, NO_DKIM) for i in range(n)))


def test_without_pct_or_at_100_every_failing_message_gets_the_policy():
    assert _policies("v=DMARC1; p=reject", 50) == Counter({("fail", "reject", False): 50})
    assert _policies("v=DMARC1; p=reject; pct=100", 50) == Counter({("fail", "reject", False): 50})


def test_pct_0_gives_every_failing_message_the_next_lower_policy():
    assert _policies("v=DMARC1; p=reject; pct=0", 50) == Counter({("fail", "quarantine", True): 50})
    assert _policies("v=DMARC1; p=quarantine; pct=0", 50) == Counter({("fail", "none", True): 50})


def test_pct_25_applies_the_policy_to_about_a_quarter_and_the_same_message_always_gets_the_same():
    got = _policies("v=DMARC1; p=reject; pct=25")
    assert 200 <= got[("fail", "reject", False)] <= 300
    assert got[("fail", "reject", False)] + got[("fail", "quarantine", True)] == 1000
    dns = Records({"_dmarc.forged.test": "v=DMARC1; p=reject; pct=25"})
    assert len({check_dmarc(dns, _message(7), FAIL_SPF, NO_DKIM) for _ in range(5)}) == 1


def test_passing_mail_and_a_bad_pct_are_not_sampled():
    dns = Records({"_dmarc.forged.test": "v=DMARC1; p=reject; pct=0"})
    ok = check_dmarc(dns, _message(1), SpfResult("pass", "forged.test", "x@forged.test"), NO_DKIM)
    assert (ok.result, ok.policy, ok.sampled_out) == ("pass", "reject", False)
    assert _policies("v=DMARC1; p=reject; pct=lots", 20) == Counter({("fail", "reject", False): 20})
