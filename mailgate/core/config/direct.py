"""Configuration of direct delivery (`delivery.direct`): when outbound mail goes to its recipients' MX hosts rather
than through an outbound gateway, how egress looks those hosts up, and which addresses it never delivers to."""
from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from mailgate.core.config.base import Strict
from mailgate.core.config.gateways import domain_names

LookupStrategy = Literal["ipv4", "ipv6", "ipv4_then_ipv6", "ipv6_then_ipv4"]


class DirectDnsConfig(Strict):
    """The resolver egress asks for MX, A and AAAA records of recipient domains."""

    nameservers: list[str] = Field(default_factory=list, description="IP addresses of recursive resolvers; "
                                                                     "empty: the system's (/etc/resolv.conf).")
    port: int = Field(53, ge=1, le=65535, description="Port of the nameservers.")
    timeout_s: float = Field(5, gt=0, description="Longest wait for one lookup (all nameservers together); past it "
                                                  "the attempt is deferred (4.4.3) to the next retry tier.")

    @field_validator("nameservers")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for ns in v:
            ipaddress.ip_address(ns)
        return v


class DirectDeliveryConfig(Strict):
    """Direct delivery: outbound mail sent to the MX hosts of its recipients' domains (RFC 5321 section 5), as
    Postfix's smtp(8) does without a relayhost. Inbound mail never goes direct: it goes to its primary server."""

    enabled: bool = Field(False, description="Outbound mail for which no outbound gateway applies (no enabled "
                          "round-robin gateway, and no specific_domains gateway for its sender domain) goes to "
                          "its recipients' MX hosts; when false, such mail waits (deferred) for a gateway.")
    sender_domains: list[str] = Field(default_factory=list, description="Sender domains whose outbound mail goes "
                                      "direct even when round-robin gateways are enabled (a specific_domains "
                                      "gateway that lists the domain still wins); exact names, as for gateways.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port of MX hosts.")
    max_mx_hosts: int = Field(5, ge=1, le=50, description="At most this many MX hosts (in preference order) are "
                              "tried in one attempt; the next attempt looks them up again.")
    lookup_strategy: LookupStrategy = Field("ipv4_then_ipv6", description="Which address families of an MX host "
                                            "to try, in which order.")
    prohibited_hosts: list[str] = Field(["127.0.0.0/8", "::1/128"], description="Networks (CIDR) no MX address "
                                        "is delivered to (KumoMTA's prohibited_hosts): such addresses are left "
                                        "out, and a domain none of whose MX addresses is left bounces with 5.4.6 "
                                        "(mail loops back to myself). Our own listening addresses are left out "
                                        "as well, whatever this says; [] allows loopback MX hosts.")
    loop_guard_exceptions: list[str] = Field(default_factory=list, description="host:port pairs delivered to "
                                             "although this gateway listens on them (e.g. a local relay "
                                             "behind the same address).")
    dns: DirectDnsConfig = Field(default_factory=DirectDnsConfig, description="The resolver of MX lookups.")

    _sender_domains = field_validator("sender_domains")(domain_names)

    @field_validator("prohibited_hosts")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(n, strict=False)) for n in v]

    @field_validator("loop_guard_exceptions")
    @classmethod
    def _host_ports(cls, v: list[str]) -> list[str]:
        out = []
        for hp in v:
            host, sep, port = hp.rpartition(":")
            if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{hp!r}: give host:port ([v6]:port for IPv6)")
            ip = ipaddress.ip_address(host.strip("[]"))
            out.append(f"[{ip}]:{int(port)}" if ip.version == 6 else f"{ip}:{int(port)}")
        return out

    def goes_direct(self, sender_domain: str, has_gateway: bool, specific_gateway: bool) -> bool:
        """Whether outbound mail from `sender_domain` goes direct: a specific_domains gateway for it wins, then
        `sender_domains`, then `enabled` when no gateway applies."""
        if specific_gateway:
            return False
        if sender_domain.strip().lower().rstrip(".") in self.sender_domains:
            return True
        return self.enabled and not has_gateway
