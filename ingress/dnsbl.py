"""DNS block and allow lists asked when a client connects, scored as postscreen scores them (RFC 5782 lookups).

Reads: `ingress.dnsbl` (sites with weights and reply filters, threshold, deadline, TTL bounds) and a client IP.
Emits: a `DnsblScore` — the total weight of the entries whose list answered for the client, the entries that counted,
and the block list to name in a refusal. Every zone is asked once per client (entries sharing a zone share the
query), all in parallel under one deadline; a list that has not answered by then, or answered with an error, counts
as not listing the client and its answer is not kept. Answers (a listing or NXDOMAIN) are kept per (zone, client)
for their TTL, bounded by `min_ttl_s`..`max_ttl_s`, in a cache of `cache_entries`. Safety (RFC 5782 section 5): a
list is asked for the test address 127.0.0.1 with the first lookup and every `safety_check_interval_s` after; a list
that answers for it "lists the world" and is left out, with a warning, until it no longer answers for it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
from cachetools import TLRUCache

from mailgate.core.config import DnsblConfig, DnsListSite

log = logging.getLogger("mailgate.ingress.dnsbl")

TEST_ADDRESS_NOT_LISTED = "127.0.0.1"
"""RFC 5782 section 5: a DNSxL must not list 127.0.0.1; one that does answers for every address."""


@dataclass(frozen=True)
class DnsblScore:
    score: int = 0
    listings: tuple[str, ...] = ()
    """The entries that counted, as zone*weight."""
    blocked_by: str = ""
    """The block list (positive weight) with the largest weight that listed the client: the one a refusal names."""

    def over(self, threshold: int) -> bool:
        return bool(self.listings) and self.score >= threshold


NOT_LISTED = DnsblScore()


def query_name(client: str, zone: str) -> str:
    """RFC 5782 section 2.1/2.4: the IPv4 octets or the IPv6 nibbles reversed, under the zone."""
    ip = ipaddress.ip_address(client)
    if ip.version == 4:
        labels = str(ip).split(".")
    else:
        labels = list(ip.exploded.replace(":", ""))
    return ".".join(reversed(labels)) + "." + zone


def score(sites: list[DnsListSite], answers: dict[str, list[str]]) -> DnsblScore:
    """The total over the entries whose zone answered (`answers`: zone → A records) with a matching address."""
    total, listed, blocker = 0, [], ("", 0)
    for site in sites:
        if any(site.matches(a) for a in answers.get(site.zone, [])):
            total += site.weight
            listed.append(f"{site.zone}*{site.weight}")
            if site.weight > blocker[1]:
                blocker = (site.zone, site.weight)
    return DnsblScore(total, tuple(listed), blocker[0])


@dataclass
class _Answer:
    addresses: list[str]
    ttl_s: float


@dataclass
class _Safety:
    checked_at: float = float("-inf")
    lists_the_world: bool = False
    running: asyncio.Task | None = field(default=None, repr=False)


class DnsLists:
    def __init__(self, cfg: DnsblConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.sites = cfg.parsed_sites()
        self.zones = sorted({s.zone for s in self.sites})
        self.clock = clock
        # No lists: no resolver (reading /etc/resolv.conf could fail where no DNS is configured at all).
        r = dns.asyncresolver.Resolver(configure=bool(self.sites) and not cfg.dns.nameservers)
        if cfg.dns.nameservers:
            r.nameservers = list(cfg.dns.nameservers)
        r.port = cfg.dns.port
        r.lifetime = min(cfg.dns.timeout_s, cfg.timeout_s)
        r.timeout = r.lifetime
        r.cache = None  # answers are kept here, per (zone, client), bounded by min/max TTL
        self._resolver = r
        self.cache: TLRUCache = TLRUCache(maxsize=cfg.cache_entries, ttu=lambda _k, v, now: now + v.ttl_s,
                                          timer=clock)
        self.safety = {z: _Safety() for z in self.zones}

    @property
    def enabled(self) -> bool:
        return bool(self.sites)

    def active_zones(self) -> list[str]:
        return [z for z in self.zones if not self.safety[z].lists_the_world]

    async def lookup(self, client: str) -> DnsblScore:
        """The client's score; never raises, never waits longer than `timeout_s`."""
        if not self.sites:
            return NOT_LISTED
        try:
            ipaddress.ip_address(client)
        except ValueError:
            return NOT_LISTED
        checks = self._due_safety_checks()
        answers: dict[str, list[str]] = {}
        asking: dict[asyncio.Task, str] = {}
        for zone in self.zones:
            cached = self.cache.get((zone, client))
            if cached is not None:
                answers[zone] = cached.addresses
            else:
                asking[asyncio.ensure_future(self._ask(query_name(client, zone)))] = zone
        waiting = set(asking) | set(checks)
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=self.cfg.timeout_s)
            for task in late:
                task.cancel()
            for task, zone in asking.items():
                if task in late or task.cancelled() or task.exception() is not None:
                    continue
                answer = task.result()
                if answer is not None:
                    self.cache[(zone, client)] = answer
                    answers[zone] = answer.addresses
        active = set(self.active_zones())
        return score([s for s in self.sites if s.zone in active], answers)

    async def _ask(self, name: str) -> _Answer | None:
        """A records of `name`: the addresses and how long to keep them; [] for NXDOMAIN / no data; None for no
        answer (timeout, SERVFAIL: not kept)."""
        try:
            answer = await self._resolver.resolve(name, "A", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as err:
            return _Answer([], self._ttl(_negative_ttl(err)))
        except (dns.exception.DNSException, OSError):
            return None
        return _Answer([r.to_text() for r in answer], self._ttl(answer.rrset.ttl if answer.rrset else 0))

    def _ttl(self, ttl: float | None) -> float:
        return max(self.cfg.min_ttl_s, min(self.cfg.max_ttl_s, ttl or 0))

    def _due_safety_checks(self) -> list[asyncio.Task]:
        now = self.clock()
        tasks = []
        for zone, state in self.safety.items():
            if state.running is None and now - state.checked_at >= self.cfg.safety_check_interval_s:
                state.checked_at = now
                state.running = asyncio.ensure_future(self._check_world(zone, state))
            if state.running is not None:
                tasks.append(state.running)
        return tasks

    async def _check_world(self, zone: str, state: _Safety) -> None:
        try:
            answer = await self._ask(query_name(TEST_ADDRESS_NOT_LISTED, zone))
        except asyncio.CancelledError:
            state.checked_at = float("-inf")  # past the deadline: ask again with the next lookup
            raise
        finally:
            state.running = None
        if answer is None:
            state.checked_at = float("-inf")  # no answer: ask again with the next lookup
            return
        world = bool(answer.addresses)
        if world and not state.lists_the_world:
            log.warning("dnsbl list %s disabled: it answers for the RFC 5782 test address 127.0.0.1 (%s), so it "
                        "would list every client; asked again in %.0fs", zone, ",".join(answer.addresses),
                        self.cfg.safety_check_interval_s)
        elif state.lists_the_world and not world:
            log.warning("dnsbl list %s enabled again: it no longer answers for 127.0.0.1", zone)
        state.lists_the_world = world


def _negative_ttl(err: dns.exception.DNSException) -> float | None:
    """The SOA minimum of a negative answer (RFC 2308), if the response carried one."""
    try:
        responses = err.kwargs.get("responses") or {}  # NXDOMAIN
        response = next(iter(responses.values()), None) or err.kwargs.get("response")  # NoAnswer
        for rrset in response.authority if response is not None else ():
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(rrset.ttl, rrset[0].minimum)
    except (AttributeError, StopIteration, IndexError, TypeError):
        pass
    return None
