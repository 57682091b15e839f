"""egress/mx.py against a real DNS server (dnsmasq on loopback) and a name server that never answers: preference
order with equal preferences shuffled, the implicit MX, null MX, NXDOMAIN, timeouts, the bound on MX hosts, the
address strategy and the loop guard. No mocks: dnspython's asynchronous resolver asks dnsmasq on a non-53 port."""
from __future__ import annotations

import pytest

from egress.mx import MxResolver, MxSettings
from tests.support.dns_server import DnsServer, SilentDns

MX = {
    "two.test": [(10, "mx1.two.test"), (20, "mx2.two.test")],
    "equal.test": [(10, "a.equal.test"), (10, "b.equal.test"), (10, "c.equal.test"), (5, "first.equal.test")],
    "many.test": [(n, f"mx{n}.many.test") for n in range(1, 9)],
    "self.test": [(10, "mx.self.test")],
    "mixed.test": [(10, "mx.mixed.test")],
    "wild.test": [(10, "mx.wild.test"), (20, "mx.far.test")],
}
HOSTS = {
    "mx1.two.test": ["127.0.0.11"], "mx2.two.test": ["127.0.0.12"],
    "a.equal.test": ["127.0.0.21"], "b.equal.test": ["127.0.0.22"], "c.equal.test": ["127.0.0.23"],
    "first.equal.test": ["127.0.0.20"],
    **{f"mx{n}.many.test": [f"127.0.1.{n}"] for n in range(1, 9)},
    "implicit.test": ["127.0.0.13"],
    "mx.self.test": ["127.0.0.1"],
    "mx.mixed.test": ["127.0.0.14", "::1"],
    "mx.wild.test": ["127.0.0.15"],
    "mx.far.test": ["192.0.2.1"],
}


@pytest.fixture(scope="module")
def dns():
    server = DnsServer({"txt-only.test": ["v=spf1 -all"]}, mx=MX, hosts=HOSTS, null_mx=("nullmx.test",)).start()
    yield server
    server.stop()


def resolver(dns, **kw) -> MxResolver:
    kw.setdefault("prohibited_hosts", ())
    return MxResolver(MxSettings(port=2525, nameservers=("127.0.0.1",), dns_port=dns.port, timeout_s=2, **kw))


async def test_mx_hosts_are_tried_in_preference_order(dns):
    found = await resolver(dns).lookup("two.test")
    assert found.reply is None
    assert [(t.mx, t.host, t.port, t.gateway) for t in found.targets] == [
        ("mx1.two.test", "127.0.0.11", 2525, "two.test"), ("mx2.two.test", "127.0.0.12", 2525, "two.test")]


async def test_equal_preferences_are_shuffled_behind_the_lower_one(dns):
    r = resolver(dns)
    orders = {tuple(t.mx for t in (await r.lookup("equal.test")).targets) for _ in range(30)}
    assert all(o[0] == "first.equal.test" and sorted(o[1:]) == ["a.equal.test", "b.equal.test", "c.equal.test"]
               for o in orders)
    assert len(orders) > 1  # 30 lookups of 3 equal hosts: one order every time has odds of 6^-29


async def test_a_domain_with_no_mx_is_its_own_implicit_mx(dns):
    found = await resolver(dns).lookup("implicit.test")
    assert [(t.mx, t.host) for t in found.targets] == [("implicit.test", "127.0.0.13")]


async def test_a_null_mx_answers_556_5_1_10_without_any_target(dns):
    found = await resolver(dns).lookup("nullmx.test")
    assert found.targets == [] and (found.reply.code, found.reply.enhanced_code) == (556, "5.1.10")
    assert found.reply.is_permanent()


async def test_nxdomain_and_a_domain_with_neither_mx_nor_address_bounce(dns):
    for domain in ("nosuch.test", "txt-only.test"):
        found = await resolver(dns).lookup(domain)
        assert found.targets == [] and found.reply.is_permanent() and found.reply.enhanced_code == "5.1.2", domain


async def test_a_name_server_that_never_answers_defers():
    silent = SilentDns()
    try:
        r = MxResolver(MxSettings(nameservers=("127.0.0.1",), dns_port=silent.port, timeout_s=0.5))
        found = await r.lookup("two.test")
    finally:
        silent.close()
    assert found.targets == [] and found.reply.is_transient() and found.reply.enhanced_code == "4.4.3"


async def test_no_more_than_max_mx_hosts_per_attempt(dns):
    found = await resolver(dns, max_mx_hosts=3).lookup("many.test")
    assert [t.mx for t in found.targets] == ["mx1.many.test", "mx2.many.test", "mx3.many.test"]


async def test_the_address_strategy_picks_the_families_and_their_order(dns):
    assert [t.host for t in (await resolver(dns).lookup("mixed.test")).targets] == ["127.0.0.14", "::1"]
    assert [t.host for t in (await resolver(dns, strategy="ipv6_then_ipv4").lookup("mixed.test")).targets] == [
        "::1", "127.0.0.14"]
    assert [t.host for t in (await resolver(dns, strategy="ipv4").lookup("mixed.test")).targets] == ["127.0.0.14"]


async def test_the_loop_guard_refuses_our_own_address_and_loopback_unless_allowed(dns):
    own = resolver(dns, own_addresses=frozenset({("127.0.0.1", 2525)}))
    found = await own.lookup("self.test")
    assert found.targets == [] and found.reply.enhanced_code == "5.4.6" and found.reply.is_permanent()
    strict = MxResolver(MxSettings(port=2525, nameservers=("127.0.0.1",), dns_port=dns.port, timeout_s=2))
    assert (await strict.lookup("two.test")).reply.enhanced_code == "5.4.6"  # loopback, not allowed
    assert [t.host for t in (await own.lookup("two.test")).targets] == ["127.0.0.11", "127.0.0.12"]


async def test_a_wildcard_listener_stands_for_every_local_address_but_not_for_others(dns):
    # 0.0.0.0:2525 accepts on 127.0.0.15 too (every 127/8 address is this host's); 192.0.2.1 (TEST-NET) is not ours
    wild = resolver(dns, own_addresses=frozenset({("0.0.0.0", 2525)}))
    assert [(t.mx, t.host) for t in (await wild.lookup("wild.test")).targets] == [("mx.far.test", "192.0.2.1")]
    assert (await wild.lookup("self.test")).reply.enhanced_code == "5.4.6"
    other_port = resolver(dns, own_addresses=frozenset({("0.0.0.0", 25)}))
    assert [t.host for t in (await other_port.lookup("wild.test")).targets] == ["127.0.0.15", "192.0.2.1"]
    v6_only = resolver(dns, own_addresses=frozenset({("::", 2525)}))
    assert [t.host for t in (await v6_only.lookup("wild.test")).targets] == ["127.0.0.15", "192.0.2.1"]


async def test_a_loop_guard_exception_is_delivered_to_and_prohibited_hosts_are_networks(dns):
    excepted = resolver(dns, own_addresses=frozenset({("0.0.0.0", 2525)}),
                        loop_exceptions=frozenset({("127.0.0.15", 2525)}))
    assert [t.host for t in (await excepted.lookup("wild.test")).targets] == ["127.0.0.15", "192.0.2.1"]
    test_net = resolver(dns, prohibited_hosts=("192.0.2.0/24",))
    assert [t.host for t in (await test_net.lookup("wild.test")).targets] == ["127.0.0.15"]
