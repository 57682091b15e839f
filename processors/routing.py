"""Routing policy: MessageReceived → MessageRouted on mail.outbound (and its audit copy).

Inbound mail goes to the primary server of its inbound gateway (its addresses in order, for failover), never
direct. Outbound mail goes to the outbound gateways chosen for the sender's domain (specific domain, else weighted
round robin), or direct to its recipients' MX hosts (`delivery.direct`: a sender domain listed there, or any
sender when it is enabled and no outbound gateway applies). A direct route is split into one MessageRouted per
recipient domain (keyed by that domain), so each domain has its own attempts, delivery state, DSN and trace lines.
The spool's delivery delay sets `not_before`; the queue lifetime (longer for Backup MX) sets `expires_at`.
"""
from __future__ import annotations

import dataclasses
import zlib

from mailgate.core import topics
from mailgate.mail.addresses import domain_of
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from processors.gateway_selection import GatewaySelector
from mailgate.mail.outputs import Output, audit
from schemas import MessageRouted, Route


class RoutingPolicy:
    cfg: Config
    """The configuration the routes are decided with (set by `reconfigure`)."""

    def __init__(self, cfg: Config, node: str, version: str | None = None) -> None:
        self.node = node
        self.version = version
        self.reconfigure(cfg)

    def for_version(self, cfg: Config, version: str) -> "RoutingPolicy":
        """A new policy for a new configuration version that keeps this one's round-robin position when the outbound
        gateways did not change (this policy stays as it is for messages still being judged by it)."""
        new = RoutingPolicy.__new__(RoutingPolicy)
        new.node, new.version, new.cfg, new.selector = self.node, version, self.cfg, self.selector
        new.reconfigure(cfg)
        return new

    def reconfigure(self, cfg: Config) -> None:
        """Take a new configuration (gateways added, changed, disabled) for the messages routed from now on."""
        if getattr(self, "cfg", None) is None or cfg.outbound_gateways != self.cfg.outbound_gateways:
            self.selector = GatewaySelector(list(cfg.outbound_gateways))  # else keep the round-robin position
        self.cfg = cfg
        self.inbound = {gw.name: gw for gw in cfg.inbound_gateways}

    def route_for(self, received) -> tuple[Route, int]:
        """The route and queue lifetime (s) of a received message."""
        d = self.cfg.delivery
        if received.direction == "inbound":
            gw = self.inbound.get(received.inbound_gateway or "")
            if gw is None:  # gateway removed since the message was accepted: find it by domain again
                gw = self.cfg.inbound_gateway_for(domain_of(received.rcpt_to[0]))
            if gw is not None:
                hosts = [f"{h}:{gw.primary_port}" for h in gw.primary_hosts()]
                lifetime = d.backup_mx_queue_lifetime_s if gw.mode == "backup_mx" else d.max_queue_lifetime_s
                return Route(kind="primary", destination=gw.name, candidates=[], hosts=hosts), lifetime
            return Route(kind="primary", destination="", candidates=[], hosts=[]), d.max_queue_lifetime_s
        sender = domain_of(received.mail_from)
        if d.direct.goes_direct(sender, has_gateway=self.selector.has_pool,
                                specific_gateway=self.selector.specific(sender)):
            return Route(kind="direct", destination="", candidates=[], hosts=[]), d.max_queue_lifetime_s
        candidates = self.selector.candidates(sender)
        dest = candidates[0] if candidates else ""
        return Route(kind="gateway", destination=dest, candidates=candidates, hosts=[]), d.max_queue_lifetime_s

    def __call__(self, received, recipients: list[str] | None = None, body: bytes | None = None) -> list[Output]:
        out: list[Output] = []
        for part in split_by_domain(self.routed(received, recipients, body)):
            out += [Output(topics.OUTBOUND, self.key(part.route.destination, part.message_id), part), audit(part)]
        return out

    def routed(self, received, recipients: list[str] | None = None, body: bytes | None = None) -> MessageRouted:
        """The message as routed, one record (a direct route not yet split: see `split_by_domain`)."""
        route, lifetime_s = self.route_for(received)
        now = now_ms()
        return MessageRouted(
            message_id=received.message_id, occurred_at=now, node=self.node, direction=received.direction,
            route=route, mail_from=received.mail_from,
            recipients=list(received.rcpt_to if recipients is None else recipients),
            received_at=received.occurred_at,
            not_before=max(now, received.occurred_at + self.cfg.spool.delivery_delay_s * 1000),
            expires_at=received.occurred_at + lifetime_s * 1000,
            body=received.body if body is None else body, config_version=self.version,
            body_crlf_only=received.body_crlf_only and (body is None or body is received.body),
            dsn_ret=received.dsn_ret, dsn_envid=received.dsn_envid, dsn_recipients=list(received.dsn_recipients))

    def key(self, destination: str, message_id: str) -> str:
        """The mail.outbound key: the destination, spread over `partitions_per_destination` partitions."""
        spread = self.cfg.delivery.partitions_per_destination
        dest = destination or "unrouted"
        return dest if spread == 1 else f"{dest}#{zlib.crc32(message_id.encode()) % spread}"


def split_by_domain(routed) -> list[MessageRouted]:
    """A direct route as one record per recipient domain (lower case, in the order the domains first occur), each
    with that domain as its destination; any other route as it is."""
    if routed.route.kind != "direct":
        return [routed]
    by_domain: dict[str, list[str]] = {}
    for r in routed.recipients:
        by_domain.setdefault(domain_of(r).lower().rstrip("."), []).append(r)
    return [dataclasses.replace(routed, recipients=rcpts, route=dataclasses.replace(routed.route, destination=dom))
            for dom, rcpts in by_domain.items()]
