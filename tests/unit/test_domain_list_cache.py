"""The cached SmarterMail domain list of web_service domain verification (mailgate/mail/directory/domains.py), with
a fake directory and an injectable clock: TTL, refresh ahead in the background, single flight, stale-if-error, the
retry interval, purge, and the decision order of the configured lists and the server's list."""
from __future__ import annotations

import asyncio

import pytest

from mailgate.core.config import ConfigError, parse_config
from mailgate.mail.directory.base import DirectoryUnavailable
from mailgate.mail.directory.domains import CachedDomainList, decide_domain, find_inbound_gateway


class FakeDirectory:
    def __init__(self, domains: set[str]) -> None:
        self.domains = domains
        self.down = False
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def domain_names(self) -> set[str]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise DirectoryUnavailable("down")
        return set(self.domains)

    async def user_exists(self, address: str) -> bool:
        raise AssertionError("not asked")

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(directory: FakeDirectory, clock: Clock, ttl_s: float = 600) -> CachedDomainList:
    return CachedDomainList(directory, ttl_s=ttl_s, clock=clock, wall_ms=lambda: int(clock.now * 1000))


def gateway(mode: str = "web_service", domains: list[str] | None = None, excluded: list[str] | None = None,
            never: str = "tempfail", name: str = "fwd"):
    dv: dict = {"mode": mode, "domains": domains or [], "when_never_fetched": never}
    if excluded:
        dv["excluded_domains"] = excluded
    return {"name": name, "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "domain_verification": dv,
            "smartermail": {"enabled": True, "url": "http://127.0.0.1:1", "username": "admin",
                            "password": {"value": "pw"}}}


def test_one_fetch_per_ttl_then_a_new_list_is_fetched():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        c = cache(d, clock)
        first = await c.contains("A.Test.")
        assert (first.listed, first.cached, first.fetched_at_ms) == (True, False, 1_000_000)
        assert (await c.contains("b.test")).listed is False
        assert d.calls == 1 and c.hits == 1
        d.domains.add("b.test")
        clock.now += 600
        answer = await c.contains("b.test")
        assert (answer.listed, answer.cached, answer.stale) == (True, False, False)
        assert d.calls == 2
    asyncio.run(run())


def test_a_lookup_near_the_end_of_the_ttl_refreshes_in_the_background():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        c = cache(d, clock)
        await c.contains("a.test")
        d.domains.add("b.test")
        clock.now += 500  # the last fifth of 600 s
        assert (await c.contains("b.test")).listed is False  # answered at once from the list it has
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert d.calls == 2
        answer = await c.contains("b.test")
        assert (answer.listed, answer.cached) == (True, True)
        clock.now += 500  # 1000 s after the first fetch, 500 after the refresh: still fresh
        assert (await c.contains("b.test")).cached and d.calls == 2
    asyncio.run(run())


def test_concurrent_lookups_share_one_fetch():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        d.gate = asyncio.Event()
        c = cache(d, clock)
        waiting = [asyncio.create_task(c.contains("a.test")) for _ in range(20)]
        await asyncio.sleep(0.01)
        d.gate.set()
        assert all(a.listed for a in await asyncio.gather(*waiting))
        assert d.calls == 1
    asyncio.run(run())


def test_server_down_after_one_fetch_gives_the_stale_list_and_asks_again_only_after_the_retry_interval():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        c = cache(d, clock)
        await c.contains("a.test")
        d.down = True
        clock.now += 601
        answer = await c.contains("a.test")
        assert (answer.listed, answer.stale, answer.fetched_at_ms) == (True, True, 1_000_000)
        assert d.calls == 2 and c.stale_answers == 1
        assert (await c.contains("other.test")).listed is False  # within 30 s of the failure: not asked again
        assert d.calls == 2
        clock.now += 30
        await c.contains("a.test")
        assert d.calls == 3
        clock.now += 86_400  # past the stale limit: nothing known
        assert (await c.contains("a.test")).listed is None
    asyncio.run(run())


def test_server_down_from_the_start_knows_nothing():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        d.down = True
        c = cache(d, clock)
        assert (await c.contains("a.test")).listed is None
        d.down = False
        clock.now += 30
        assert (await c.contains("a.test")).listed is True
    asyncio.run(run())


def test_purge_of_everything_or_of_any_domain_drops_the_list_but_an_address_purge_does_not():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        c = cache(d, clock)
        await c.contains("a.test")
        assert c.purge("bob@a.test") == 0
        assert c.purge("new.test") == 1  # a domain new on the server is in no cached list
        d.domains.add("new.test")
        assert (await c.contains("new.test")).listed is True and d.calls == 2
        assert c.purge(None) == 1 and c.purge(None) == 0
    asyncio.run(run())


def test_a_fetch_begun_before_a_purge_is_not_kept():
    async def run():
        d, clock = FakeDirectory({"a.test"}), Clock()
        d.gate = asyncio.Event()
        c = cache(d, clock)
        waiting = asyncio.create_task(c.contains("a.test"))
        await asyncio.sleep(0.01)
        c.purge("a.test")
        d.gate.set()
        assert (await waiting).listed is True
        await c.contains("a.test")
        assert d.calls == 2
    asyncio.run(run())


def test_configured_lists_add_and_exclude_and_decide_before_the_server():
    async def run():
        cfg = parse_config({"inbound_gateways": [gateway(domains=["extra.test"], excluded=["hidden.test"])]})
        gw = cfg.inbound_gateways[0]
        d, clock = FakeDirectory({"a.test", "hidden.test"}), Clock()
        lists = {"fwd": cache(d, clock)}
        assert (await decide_domain(gw, "extra.test", lists)).source == "list"
        assert d.calls == 0
        assert (await decide_domain(gw, "hidden.test", lists)).accepted is False
        ws = await decide_domain(gw, "a.test", lists)
        assert (ws.accepted, ws.source, ws.outcome) == (True, "web_service", "accepted")
        assert (await decide_domain(gw, "no.test", lists)).outcome == "refused"
        d.down = True
        lists["fwd"].purge(None)
        assert (await decide_domain(gw, "a.test", lists)).outcome == "unavailable"
        assert (await decide_domain(gw, "extra.test", lists)).accepted is True
    asyncio.run(run())


def test_when_never_fetched_configured_lists_refuses_what_the_lists_do_not_accept():
    async def run():
        cfg = parse_config({"inbound_gateways": [gateway(domains=["extra.test"], never="configured_lists")]})
        d, clock = FakeDirectory({"a.test"}), Clock()
        d.down = True
        lists = {"fwd": cache(d, clock)}
        gw, decision = await find_inbound_gateway(cfg.inbound_gateways, "a.test", lists)
        assert gw is None and decision is not None and (decision.accepted, decision.source) == (False, "list")
        gw, decision = await find_inbound_gateway(cfg.inbound_gateways, "extra.test", lists)
        assert gw is not None and gw.name == "fwd"
    asyncio.run(run())


def test_a_gateway_that_cannot_tell_makes_the_answer_a_tempfail_unless_a_later_one_accepts():
    async def run():
        later = gateway(mode="specified_domains", domains=["b.test"], name="list")
        cfg = parse_config({"inbound_gateways": [gateway(), later]})
        d, clock = FakeDirectory(set()), Clock()
        d.down = True
        lists = {"fwd": cache(d, clock)}
        gw, decision = await find_inbound_gateway(cfg.inbound_gateways, "a.test", lists)
        assert gw is None and decision is not None and decision.outcome == "unavailable"
        gw, decision = await find_inbound_gateway(cfg.inbound_gateways, "b.test", lists)
        assert gw is not None and gw.name == "list"
    asyncio.run(run())


def test_web_service_needs_smartermail_gateway_mode_and_excluded_domains_needs_web_service():
    bare = {"name": "fwd", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "domain_verification": {"mode": "web_service"}}
    with pytest.raises(ConfigError, match="SmarterMail gateway mode"):
        parse_config({"inbound_gateways": [bare]})
    with pytest.raises(ConfigError, match="excluded_domains is only for mode web_service"):
        parse_config({"inbound_gateways": [gateway(mode="specified_domains", excluded=["x.test"])]})
    with pytest.raises(ConfigError, match="both in domains and excluded_domains"):
        parse_config({"inbound_gateways": [gateway(domains=["x.test"], excluded=["x.test"])]})
    with pytest.raises(ConfigError, match="when_never_fetched"):
        parse_config({"inbound_gateways": [gateway(never="accept_all")]})
