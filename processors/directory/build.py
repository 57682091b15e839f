"""Builds the recipient directories of the configured inbound gateways, for ingress and the processor alike.

Reads: `inbound_gateways[*].smartermail`. Emits: one `CachedDirectory` per gateway that verifies users by web
service, keyed by gateway name. Each process builds its own (the caches live in the process that asks).
"""
from __future__ import annotations

from mailgate.config import InboundGateway
from processors.directory.cache import CachedDirectory
from processors.directory.smartermail import SmarterMailDirectory


def verifies_users(gw: InboundGateway) -> bool:
    """Whether this gateway checks recipients against its SmarterMail web services."""
    sm = gw.smartermail
    return gw.status == "enabled" and sm.enabled and sm.user_verification == "web_service"


def build_directories(gateways: list[InboundGateway]) -> dict[str, CachedDirectory]:
    """One cached directory per gateway that verifies users by web service."""
    return {gw.name: CachedDirectory(SmarterMailDirectory(gw.smartermail), ttl_s=gw.smartermail.cache_ttl_s)
            for gw in gateways if verifies_users(gw)}
