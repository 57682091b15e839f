"""Builds the recipient directories of the configured inbound gateways, for ingress and the processor alike.

Reads: `inbound_gateways[*].smartermail` and `smtp_user_verification`. Emits: one `CachedDirectory` per gateway
that verifies users — by SmarterMail web service when that is configured, else by SMTP callout to the primary
when `smtp_user_verification` is on — keyed by gateway name. Each process builds its own (the caches live in the
process that asks).
"""
from __future__ import annotations

import socket

from mailgate.core.config import InboundGateway
from mailgate.mail.directory.cache import CachedDirectory
from mailgate.mail.directory.smartermail import SmarterMailDirectory
from mailgate.mail.directory.smtp_callout import SmtpCalloutDirectory


def uses_web_service(gw: InboundGateway) -> bool:
    sm = gw.smartermail
    return sm.enabled and sm.user_verification == "web_service"


def verifies_users(gw: InboundGateway) -> bool:
    """Whether this gateway checks recipients: by SmarterMail web service, or by SMTP callout to the primary."""
    return gw.status == "enabled" and (uses_web_service(gw) or gw.smtp_user_verification)


def verification_method(gw: InboundGateway) -> str:
    """How this gateway verifies users, as events name it: web_service, smtp_callout, or none."""
    if not verifies_users(gw):
        return "none"
    return "web_service" if uses_web_service(gw) else "smtp_callout"


def _directory(gw: InboundGateway):
    if uses_web_service(gw):
        return SmarterMailDirectory(gw.smartermail)
    return SmtpCalloutDirectory(gw.primary_hosts(), gw.primary_port, helo_name=socket.getfqdn(),
                                timeout_s=gw.smartermail.timeout_s)


def build_directories(gateways: list[InboundGateway]) -> dict[str, CachedDirectory]:
    """One cached directory per gateway that verifies users."""
    return {gw.name: CachedDirectory(_directory(gw), ttl_s=gw.smartermail.cache_ttl_s)
            for gw in gateways if verifies_users(gw)}
