"""Builds the recipient directories of the configured inbound gateways, for ingress and the processor alike.

Reads: `inbound_gateways[*].smartermail`, `smtp_user_verification` and `domain_verification.mode`. Emits: one
`CachedDirectory` per gateway that verifies users — by SmarterMail web service when that is configured, else by SMTP
callout to the primary when `smtp_user_verification` is on — and one `CachedDomainList` per gateway whose domain
verification is `web_service`, each keyed by gateway name. Each process builds its own (the caches live in the
process that asks).
"""
from __future__ import annotations

import socket

from mailgate.core.config import InboundGateway
from mailgate.mail.directory.cache import CachedDirectory
from mailgate.mail.directory.domains import CachedDomainList, uses_web_service_domains
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


_DIRECTORY_SETTINGS = {"mode", "status", "primary_addresses", "primary_port", "smtp_user_verification", "smartermail"}
"""The gateway settings a directory is built from: a change to any of them gets the gateway a new directory."""


def rebuild_directories(old: dict[str, CachedDirectory], old_gateways: list[InboundGateway],
                        new_gateways: list[InboundGateway]) -> tuple[dict[str, CachedDirectory], list[CachedDirectory]]:
    """(directories for `new_gateways`, directories no longer used). A gateway whose verification settings did not
    change keeps its directory and cached answers; a changed one (new URL, credentials, verification mode...) gets a
    new directory, so its cache is dropped and the next lookup uses the new settings."""
    before = {gw.name: gw.model_dump(include=_DIRECTORY_SETTINGS) for gw in old_gateways}
    out: dict[str, CachedDirectory] = {}
    for gw in new_gateways:
        if not verifies_users(gw):
            continue
        same = before.get(gw.name) == gw.model_dump(include=_DIRECTORY_SETTINGS)
        out[gw.name] = old[gw.name] if same and gw.name in old else CachedDirectory(_directory(gw),
                                                                                      ttl_s=gw.smartermail.cache_ttl_s)
    retired = [d for name, d in old.items() if out.get(name) is not d]
    return out, retired


def _domain_list(gw: InboundGateway) -> CachedDomainList:
    return CachedDomainList(SmarterMailDirectory(gw.smartermail), ttl_s=gw.smartermail.cache_ttl_s)


def build_domain_lists(gateways: list[InboundGateway]) -> dict[str, CachedDomainList]:
    """One cached domain list per gateway that accepts the domains its SmarterMail server reports."""
    return {gw.name: _domain_list(gw) for gw in gateways if uses_web_service_domains(gw)}


def rebuild_domain_lists(old: dict[str, CachedDomainList], old_gateways: list[InboundGateway],
                         new_gateways: list[InboundGateway]
                         ) -> tuple[dict[str, CachedDomainList], list[CachedDomainList]]:
    """(domain lists for `new_gateways`, lists no longer used). A gateway whose SmarterMail settings did not change
    keeps its cached list (a change of its configured domain lists needs no new fetch); one whose URL, credentials
    or TTL changed gets a new, empty cache."""
    before = {gw.name: gw.smartermail.model_dump() for gw in old_gateways if uses_web_service_domains(gw)}
    out: dict[str, CachedDomainList] = {}
    for gw in new_gateways:
        if not uses_web_service_domains(gw):
            continue
        same = before.get(gw.name) == gw.smartermail.model_dump()
        out[gw.name] = old[gw.name] if same and gw.name in old else _domain_list(gw)
    retired = [d for name, d in old.items() if out.get(name) is not d]
    return out, retired
