"""MX resolution for direct delivery (RFC 5321 section 5, RFC 7505): a recipient domain -> the addresses to try.

Reads: a destination domain and DNS, through dnspython's asynchronous resolver (nameservers, port and timeout as
given, so the tests point it at a DNS server on loopback). Emits: an MxLookup — the Targets to try in order, or
the reply every recipient of that domain gets without a connection:
- MX records in preference order, records of equal preference shuffled; with no MX record (NOERROR, no answer)
  the domain itself is the one implicit MX (its A/AAAA records);
- a null MX (one record, preference 0, exchange ".") answers `556 5.1.10` at once: the domain accepts no mail;
- NXDOMAIN, or a domain with neither MX nor address, answers 5.1.2: bounced;
- a DNS timeout or SERVFAIL answers 4.4.3: deferred, tried again at the next retry tier;
- each MX host's addresses by the lookup `strategy` (ipv4, ipv6, ipv4_then_ipv6, ipv6_then_ipv4); at most
  `max_mx_hosts` MX hosts per attempt;
- the loop guard leaves out our own listening addresses at the delivery port (a wildcard listener, 0.0.0.0 or ::,
  stands for every address of this host: one a socket can be bound to) unless listed in `loop_exceptions`, and
  every address in `prohibited_hosts` (loopback by default); when that leaves nothing, 5.4.6 "mail loops back to
  myself" (Postfix's words).
Called by egress/delivery.py at the start of each direct attempt; `settings_of` reads its settings from
`delivery.direct` and the ingress listeners (our own addresses).
"""
from __future__ import annotations

import functools
import ipaddress
import random
import socket
from dataclasses import dataclass, field
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.resolver

from egress.targets import Target
from mailgate.core.config import Config
from mailgate.mail.smtp_reply import Reply

Strategy = Literal["ipv4", "ipv6", "ipv4_then_ipv6", "ipv6_then_ipv4"]

NULL_MX = Reply(556, "5.1.10", "Recipient address has null MX")
"""RFC 7505 section 3.2: the domain publishes a null MX, it accepts no mail."""


def no_such_domain(domain: str) -> Reply:
    """NXDOMAIN, or neither MX nor address records: the domain cannot receive mail."""
    return Reply(550, "5.1.2", f"{domain}: no mail exchanger and no address for the domain")


def dns_unavailable(domain: str, why: str) -> Reply:
    """A DNS timeout or SERVFAIL: the lookup is tried again at the next attempt."""
    return Reply(451, "4.4.3", f"{domain}: DNS lookup failed ({why})")


def loops_back(domain: str) -> Reply:
    """Every address of the domain's MX hosts is our own (or loopback, not allowed)."""
    return Reply(554, "5.4.6", f"mail for {domain} loops back to myself")


@dataclass(frozen=True)
class MxSettings:
    """How direct delivery looks up and filters MX hosts."""

    port: int = 25
    """The SMTP port of MX hosts."""
    nameservers: tuple[str, ...] = ()
    """Name server addresses; empty: the system's (/etc/resolv.conf)."""
    dns_port: int = 53
    """The UDP/TCP port of those name servers."""
    timeout_s: float = 5.0
    """How long one lookup may take before it counts as a timeout (deferred)."""
    max_mx_hosts: int = 5
    """At most this many MX hosts are tried in one attempt."""
    strategy: Strategy = "ipv4_then_ipv6"
    """Which address families of an MX host to try, in which order."""
    prohibited_hosts: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Networks never delivered to (KumoMTA's prohibited_hosts); () allows loopback MX hosts (tests, a local relay)."""
    own_addresses: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """(address, port) pairs this gateway listens on: never delivered to. 0.0.0.0 and :: stand for every local
    address."""
    loop_exceptions: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """(address, port) pairs delivered to although they are our own."""


WILDCARDS = {"0.0.0.0": 4, "::": 6, "": 0}
"""Listener addresses that accept on every local address: of IPv4, of IPv6 (asyncio's listeners on :: are
IPv6-only), of both ("", every interface)."""


@functools.lru_cache(maxsize=4096)
def is_local(ip: str) -> bool:
    """Whether `ip` is an address of this host: the kernel lets a socket be bound to it (every 127.0.0.0/8 address
    on Linux, every interface address)."""
    addr = ipaddress.ip_address(ip)
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class MxLookup:
    """The outcome of one lookup: targets to try in order, or the reply for every recipient (no connection)."""

    targets: list[Target]
    reply: Reply | None = None


class MxResolver:
    def __init__(self, settings: MxSettings) -> None:
        self.settings = settings
        r = dns.asyncresolver.Resolver(configure=not settings.nameservers)
        if settings.nameservers:
            r.nameservers = list(settings.nameservers)
            r.port = settings.dns_port
        r.lifetime = settings.timeout_s
        r.timeout = settings.timeout_s
        self.resolver = r
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.prohibited_hosts]

    async def lookup(self, domain: str) -> MxLookup:
        """The targets for mail to `domain`, or the reply that answers for it without a connection."""
        domain = domain.rstrip(".").lower()
        try:
            hosts = await self._mx_hosts(domain)
        except dns.resolver.NXDOMAIN:
            return MxLookup([], no_such_domain(domain))
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as err:
            return MxLookup([], dns_unavailable(domain, type(err).__name__))
        if hosts is None:
            return MxLookup([], NULL_MX)
        targets: list[Target] = []
        refused = 0
        for host in hosts[: self.settings.max_mx_hosts]:
            try:
                addresses = await self._addresses(host)
            except (dns.exception.Timeout, dns.resolver.NoNameservers) as err:
                if host == domain:  # the implicit MX: its address lookup is the domain's
                    return MxLookup([], dns_unavailable(domain, type(err).__name__))
                continue  # another MX host may answer
            for ip in addresses:
                if self._prohibited(ip):
                    refused += 1
                    continue
                targets.append(Target(gateway=domain, host=ip, port=self.settings.port, mx=host))
        if targets:
            return MxLookup(targets)
        if refused:
            return MxLookup([], loops_back(domain))
        if hosts == [domain]:
            return MxLookup([], no_such_domain(domain))
        return MxLookup([], dns_unavailable(domain, "no address for any MX host"))

    async def _mx_hosts(self, domain: str) -> list[str] | None:
        """MX host names in the order to try; [domain] for the implicit MX; None for a null MX."""
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [domain]
        records = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in answer]
        if len(records) == 1 and records[0][1] in ("", "."):
            return None
        by_preference: dict[int, list[str]] = {}
        for pref, host in records:
            if host not in ("", "."):
                by_preference.setdefault(pref, []).append(host)
        ordered: list[str] = []
        for pref in sorted(by_preference):
            same = by_preference[pref]
            random.shuffle(same)
            ordered += [h for h in same if h not in ordered]
        return ordered

    async def _addresses(self, host: str) -> list[str]:
        """`host`'s addresses in the strategy's order (a family with no records contributes none)."""
        families = {"ipv4": ["A"], "ipv6": ["AAAA"], "ipv4_then_ipv6": ["A", "AAAA"],
                    "ipv6_then_ipv4": ["AAAA", "A"]}[self.settings.strategy]
        out: list[str] = []
        for rdtype in families:
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            out += [r.address for r in answer]
        return out

    def _prohibited(self, ip: str) -> bool:
        """The loop guard: our own listening address at the delivery port, or an address in `prohibited_hosts`."""
        addr = ipaddress.ip_address(ip)
        if any(addr in n for n in self._networks):
            return True
        port = self.settings.port
        if (ip, port) in self.settings.loop_exceptions:
            return False
        for host, p in self.settings.own_addresses:
            if p != port:
                continue
            if host == ip:
                return True
            family = WILDCARDS.get(host)
            if family is not None and family in (0, addr.version) and is_local(ip):
                return True
        return False


def _addresses(host: str) -> list[str]:
    """A listener's address as IP addresses: itself, a wildcard as given, a name resolved (once, at start-up)."""
    if host in ("", "0.0.0.0", "::"):
        return [host]
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        try:
            return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
        except OSError:
            return []


def settings_of(cfg: Config) -> MxSettings:
    """How egress/mx.py looks MX hosts up and guards against loops, from `delivery.direct` and the ingress
    listeners (our own addresses)."""
    d = cfg.delivery.direct
    listeners = [(cfg.ingress.listen_host, cfg.ingress.listen_port)] + [(x.host, x.port) for x in cfg.ingress.listeners]
    own = frozenset((ip, port) for host, port in listeners for ip in _addresses(host))
    exceptions = frozenset((hp.rpartition(":")[0].strip("[]"), int(hp.rpartition(":")[2]))
                           for hp in d.loop_guard_exceptions)
    return MxSettings(port=d.port, nameservers=tuple(d.dns.nameservers), dns_port=d.dns.port,
                      timeout_s=d.dns.timeout_s, max_mx_hosts=d.max_mx_hosts, strategy=d.lookup_strategy,
                      prohibited_hosts=tuple(d.prohibited_hosts), own_addresses=own, loop_exceptions=exceptions)
