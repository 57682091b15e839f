"""processors.spam.scorers.TrustedHeaderScorer: an upstream's score is believed only from a trusted client."""
import pytest

from mailgate.core.config import SpamConfig, SpamScorer
from processors.spam.scorers import RspamdScorer, SpamdScorer, TrustedHeaderScorer, build_scorers

TRUSTED = ["10.0.0.5", "192.0.2.10-192.0.2.20", "2001:db8::/32"]
BODY = b"\r\nX-Spam-Score: 99\r\n"


def msg(*headers: bytes) -> bytes:
    return b"".join(h + b"\r\n" for h in headers) + b"From: a@example.com\r\nSubject: hi\r\n" + BODY


@pytest.fixture
def scorer() -> TrustedHeaderScorer:
    return TrustedHeaderScorer(TRUSTED, name="upstream", weight=0.5)


@pytest.mark.parametrize("client", ["10.0.0.5", "192.0.2.15", "2001:db8::1", "::ffff:10.0.0.5"])
async def test_score_header_from_a_trusted_client(scorer, client):
    assert await scorer.score(msg(b"X-Spam-Score: 7.1"), client) == 7.1


@pytest.mark.parametrize("client", ["10.0.0.6", "192.0.2.21", "2001:db9::1", "", "not-an-ip"])
async def test_untrusted_client_has_no_opinion(scorer, client):
    assert await scorer.score(msg(b"X-Spam-Score: 7.1"), client) is None


async def test_status_header_yes_and_no(scorer):
    status = b"X-Spam-Status: Yes, score=7.1 required=5.0 tests=GTUBE,\r\n\tMISSING_DATE autolearn=no"
    assert await scorer.score(msg(status), "10.0.0.5") == 7.1
    assert await scorer.score(msg(b"X-Spam-Status: No, score=-0.4 required=5.0"), "10.0.0.5") == -0.4


async def test_score_header_is_preferred_to_status(scorer):
    m = msg(b"X-Spam-Status: Yes, score=9.9 required=5.0", b"X-Spam-Score: 3.0")
    assert await scorer.score(m, "10.0.0.5") == 3.0


async def test_the_topmost_header_is_read(scorer):
    assert await scorer.score(msg(b"X-Spam-Score: 2.5", b"X-Spam-Score: 40"), "10.0.0.5") == 2.5


@pytest.mark.parametrize("header", [b"X-Spam-Score: lots", b"X-Spam-Score: nan", b"X-Spam-Score: inf",
                                    b"X-Spam-Status: Yes, required=5.0", b"X-Other: 5"])
async def test_unreadable_or_absent_header_has_no_opinion(scorer, header):
    assert await scorer.score(msg(header), "10.0.0.5") is None


async def test_a_score_in_the_body_is_ignored(scorer):
    assert await scorer.score(msg(), "10.0.0.5") is None


def test_bad_trusted_spec_is_refused():
    with pytest.raises(ValueError):
        TrustedHeaderScorer(["10.0.0.300"])


def test_build_scorers_from_config():
    cfg = SpamConfig(max_scan_bytes=4096, scorers=[
        SpamScorer(kind="spamd", port=7830, timeout_s=3, weight=2),
        SpamScorer(kind="rspamd", name="rs", url="http://rspamd:11333/"),
        SpamScorer(kind="trusted_header", trusted_ips=["10.0.0.0/8"], weight=0.5),
    ])
    spamd, rspamd, trusted = build_scorers(cfg)
    assert isinstance(spamd, SpamdScorer) and (spamd.name, spamd.port, spamd.weight) == ("spamd", 7830, 2)
    assert spamd.max_scan_bytes == 4096 and spamd.timeout_s == 3
    assert isinstance(rspamd, RspamdScorer) and rspamd.url == "http://rspamd:11333/checkv2" and rspamd.name == "rs"
    assert isinstance(trusted, TrustedHeaderScorer) and (trusted.name, trusted.weight) == ("trusted_header", 0.5)
