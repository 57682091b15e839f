"""Where a routed message may be sent, in order: the route's candidates resolved against the live configuration.

Reads: a Route and the configuration. Emits: Targets — for a primary, each of its addresses; for outbound, each
enabled candidate gateway (a gateway disabled since routing is skipped, so its queued mail moves to the others);
for a direct route, the MX addresses egress/mx.py looked up for its recipient domain.
Gateways, primary and MX addresses the health tracker has marked down are left out until their probe time (a
primary's or an MX host's addresses are all tried when every one of them is down).
"""
from __future__ import annotations

from dataclasses import dataclass

from egress.health import GatewayHealth
from mailgate.core.config import Config, OutboundGateway, Secret


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

    def usable(self, targets: list[Target]) -> list[Target]:
        """A direct route's MX addresses (egress/mx.py) without those marked down, or all when every one is."""
        return [t for t in targets if self.health.is_usable(t.label)] or targets

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

