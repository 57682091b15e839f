"""Where a routed message may be sent, in order: the route's candidates resolved against the live configuration.

Reads: a Route and the configuration. Emits: Targets — for a primary, each of its addresses; for outbound, each
enabled candidate gateway (a gateway disabled since routing is skipped, so its queued mail moves to the others);
for a direct route, the MX hosts of its recipient domain looked up now (egress/mx.py), or the reply every
recipient gets without a connection (null MX, NXDOMAIN, a DNS failure, the loop guard).
Gateways, primary and MX addresses the health tracker has marked down are left out until their probe time (a
primary's or an MX host's addresses are all tried when every one of them is down).
"""
from __future__ import annotations

from dataclasses import dataclass

import ipaddress
import socket
from typing import TYPE_CHECKING

from egress.health import GatewayHealth
from mailgate.core.config import Config, OutboundGateway, Secret
from mailgate.mail.smtp_reply import Reply

if TYPE_CHECKING:
    from egress.mx import MxSettings


@dataclass(frozen=True)
class Target:
    """Where to connect: an outbound gateway, one address of an inbound gateway's primary, or one address of a
    recipient domain's MX host (egress/mx.py)."""

    gateway: str
    """The gateway's name, the inbound gateway's name (primary), or the recipient domain (MX)."""
    host: str
    """The address (or name) connected to."""
    port: int
    """The SMTP port."""
    encryption: str = "none"
    """none, ssl (implicit TLS) or tls (STARTTLS required)."""
    tls_verify: bool = True
    """Verify the server's certificate."""
    ca_file: str | None = None
    """CA bundle to verify it with (None: the system's)."""
    auth_username: str | None = None
    """AUTH user name; no AUTH when None."""
    auth_password: Secret | None = None
    """AUTH password."""
    mx: str = ""
    """The MX host name whose address `host` is (direct delivery); empty otherwise."""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def gateway_target(g: OutboundGateway) -> Target:
    """The Target of an outbound gateway: its address, encryption and AUTH."""
    return Target(gateway=g.name, host=g.address, port=g.port, encryption=g.encryption, tls_verify=g.tls_verify,
                  ca_file=str(g.ca_file) if g.ca_file else None, auth_username=g.auth_username,
                  auth_password=g.auth_password)


class TargetResolver:
    def __init__(self, cfg: Config, health: GatewayHealth) -> None:
        self.reconfigure(cfg)
        self.health = health

    def reconfigure(self, cfg: Config) -> None:
        """Gateways from a configuration change: a disabled one takes no more mail, from the next attempt on."""
        self.outbound = {g.name: g for g in cfg.outbound_gateways}
        if getattr(self, "mx_settings", None) is None:  # delivery.direct is not a live setting: built once
            from egress.mx import MxResolver
            self.mx_settings = mx_settings(cfg)
            self.mx = MxResolver(self.mx_settings)

    async def for_attempt(self, route) -> tuple[list[Target], Reply | None]:
        """The targets of one attempt, in order, or the reply that answers for every recipient without one."""
        if route.kind != "direct":
            return self.targets(route), None
        found = await self.mx.lookup(route.destination)
        usable = [t for t in found.targets if self.health.is_usable(t.label)]
        return usable or found.targets, found.reply

    def targets(self, route) -> list[Target]:
        if route.kind == "primary":
            out = []
            for hp in route.hosts:
                host, _, port = hp.rpartition(":")
                out.append(Target(gateway=route.destination, host=host.strip("[]"), port=int(port)))
            return [t for t in out if self.health.is_usable(t.label)] or out
        out = []
        for name in route.candidates:
            g = self.outbound.get(name)
            if g is None or g.status != "enabled" or not self.health.is_usable(name):
                continue
            out.append(gateway_target(g))
        return out

    def health_key(self, target: Target) -> str:
        """Primaries and MX hosts are tracked per address, gateways per name."""
        return target.gateway if target.gateway in self.outbound and not target.mx else target.label


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


def mx_settings(cfg: Config) -> "MxSettings":
    """How egress/mx.py looks MX hosts up and guards against loops, from `delivery.direct` and the ingress
    listeners (our own addresses)."""
    from egress.mx import MxSettings
    d = cfg.delivery.direct
    listeners = [(cfg.ingress.listen_host, cfg.ingress.listen_port)] + [(x.host, x.port) for x in cfg.ingress.listeners]
    own = frozenset((ip, port) for host, port in listeners for ip in _addresses(host))
    exceptions = frozenset((hp.rpartition(":")[0].strip("[]"), int(hp.rpartition(":")[2]))
                           for hp in d.loop_guard_exceptions)
    return MxSettings(port=d.port, nameservers=tuple(d.dns.nameservers), dns_port=d.dns.port,
                      timeout_s=d.dns.timeout_s, max_mx_hosts=d.max_mx_hosts, strategy=d.lookup_strategy,
                      prohibited_hosts=tuple(d.prohibited_hosts), own_addresses=own, loop_exceptions=exceptions)
