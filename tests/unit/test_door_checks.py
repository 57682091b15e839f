"""The pure parts of the checks at the SMTP door: postscreen_dnsbl_sites syntax, RFC 5782 query names, scoring,
the answer cache's TTL bounds and the pre-greet pass cache (the DNS and SMTP sides: tests/scenario/test_door_checks.py).
"""
from __future__ import annotations

import pytest

from ingress.dnsbl import DnsLists, _Answer, query_name, score
from ingress.pregreet import Pregreet
from mailgate.core.config import ConfigError, DnsblConfig, DnsListSite, PregreetConfig, parse_config


def test_site_syntax_of_postscreen_dnsbl_sites():
    site = DnsListSite.parse("zen.spamhaus.org=127.0.0.[2..11]*3")
    assert (site.zone, site.weight) == ("zen.spamhaus.org", 3)
    assert site.matches("127.0.0.2") and site.matches("127.0.0.11")
    assert not site.matches("127.0.0.12") and not site.matches("127.0.1.2")
    allow = DnsListSite.parse("list.dnswl.org=127.0.[0..255].[1;3]*-2")
    assert allow.weight == -2 and allow.matches("127.0.9.3") and not allow.matches("127.0.9.2")
    plain = DnsListSite.parse("bl.example.test")
    assert (plain.weight, plain.filter) == (1, None) and plain.matches("127.0.0.255")


@pytest.mark.parametrize("bad", ["nodot", "bl.test=127.0.0", "bl.test=127.0.0.[300]", "bl.test*x",
                                 "bl.test=127.0.0.[2..]"])
def test_a_bad_site_is_a_configuration_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match="ingress.dnsbl.sites"):
        parse_config({"ingress": {"dnsbl": {"sites": [bad]}}})


def test_query_names_follow_rfc_5782():
    assert query_name("192.0.2.99", "bl.test") == "99.2.0.192.bl.test"
    assert query_name("2001:db8:1:2::ab", "bl.test").startswith("b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.")
    assert query_name("2001:db8:1:2::ab", "bl.test").endswith("8.b.d.0.1.0.0.2.bl.test")


def test_weights_sum_once_per_entry_and_the_largest_block_list_is_named():
    sites = [DnsListSite.parse(t) for t in ("a.test*2", "b.test*3", "b.test=127.0.0.4*1", "w.test*-4")]
    got = score(sites, {"a.test": ["127.0.0.2"], "b.test": ["127.0.0.2", "127.0.0.3"]})
    assert (got.score, got.blocked_by, got.listings) == (5, "b.test", ("a.test*2", "b.test*3"))
    assert got.over(5) and not got.over(6)
    allowed = score(sites, {"a.test": ["127.0.0.2"], "w.test": ["127.0.0.2"]})
    assert (allowed.score, allowed.blocked_by) == (-2, "a.test")
    assert not score(sites, {}).over(0)  # listed nowhere is never "over", whatever the threshold


def test_answers_are_kept_for_their_ttl_within_the_bounds():
    now = [0.0]
    lists = DnsLists(DnsblConfig(sites=["a.test"], min_ttl_s=60, max_ttl_s=600), clock=lambda: now[0])
    assert lists._ttl(5) == 60 and lists._ttl(300) == 300 and lists._ttl(86400) == 600 and lists._ttl(None) == 60
    lists.cache[("a.test", "192.0.2.1")] = _Answer(["127.0.0.2"], 300)
    now[0] = 299
    assert ("a.test", "192.0.2.1") in lists.cache
    now[0] = 301
    assert ("a.test", "192.0.2.1") not in lists.cache


def test_the_pregreet_pass_cache_expires_and_is_bounded():
    now = [0.0]
    p = Pregreet(PregreetConfig(action="drop", pass_ttl_s=10, cache_entries=2), clock=lambda: now[0])
    assert p.needed("drop", "192.0.2.1") and not p.needed("off", "192.0.2.1")
    p.remember_pass("192.0.2.1")
    assert not p.needed("enforce", "192.0.2.1")
    p.remember_pass("192.0.2.2")
    p.remember_pass("192.0.2.3")
    assert len(p.passed) == 2  # bounded: the oldest forgotten
    now[0] = 11
    assert p.needed("drop", "192.0.2.3")  # expired: tested again


async def test_a_listed_client_that_logged_in_is_not_refused_at_rcpt():
    import asyncio
    from types import SimpleNamespace

    from ingress.dnsbl import DnsblScore
    from ingress.smtp_server import GatewaySMTP
    session = object.__new__(GatewaySMTP)  # only the state door_refusal reads
    session._enforced = None
    session.door = SimpleNamespace(dnsbl_action="rcpt", threshold=3)
    session.session = SimpleNamespace(peer=("192.0.2.1", 25))
    looked_up = asyncio.get_running_loop().create_future()
    looked_up.set_result(DnsblScore(4, ("bl.test*4",), "bl.test"))
    session._dnsbl = looked_up
    assert await session.door_refusal(authenticated=True) is None
    assert await session.door_refusal(authenticated=False) == (
        "dnsbl", "dnsbl:bl.test", "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test", 4)


def test_access_entries_match_clients_senders_and_helo_and_a_block_wins():
    from ingress.access import decide
    from mailgate.core.config import AccessRule as R
    rules = [R(action="allow", kind="client", value="192.0.2.0/24"), R(action="block", kind="sender",
             value="@spam.test"), R(action="allow", kind="sender", value="example.test"),
             R(action="block", kind="helo", value="Bot.Test"), R(action="block", kind="sender", value="x@ok.test")]
    assert decide(rules, "192.0.2.7", "a@b.test", "h").action == "allow"
    assert decide(rules, "192.0.2.7", "a@SPAM.test", "h").action == "block"  # a block wins over the allow
    assert decide(rules, "198.51.100.1", "a@sub.spam.test", "h") is None  # @domain: that domain only
    assert decide(rules, "198.51.100.1", "a@sub.example.test", "h").action == "allow"  # domain: and subdomains
    assert decide(rules, "198.51.100.1", "", "bot.test").kind == "helo"
    assert decide(rules, "198.51.100.1", "X@ok.test", "h").action == "block"
    assert decide(rules, "198.51.100.1", "y@ok.test", "h") is None
    with pytest.raises(ValueError):
        R(action="block", kind="client", value="not-an-ip")
