"""User verification at RCPT time: ask the inbound gateway's directory (through its 10-minute cache) whether the
recipient exists, so unknown users are refused in the SMTP dialogue and never bounced later (no backscatter).

Reads: the gateway's `smartermail` settings. Emits: a Verdict and a reason, and RecipientVerified audit events.
Directory unreachable: a cached answer is used even if stale; with none, Domain Forward tempfails (451 4.4.3) and
Backup MX accepts (its primary, and so its directory, is expected to be down when it receives mail).
"""
from __future__ import annotations

import logging
from typing import Callable

from ingress.replies import Verdict
from mailgate.config import InboundGateway
from mailgate.ids import now_ms
from processors.directory import CachedDirectory, SmarterMailDirectory
from schemas import RecipientVerified

log = logging.getLogger("mailgate.ingress.verification")


def build_directories(gateways: list[InboundGateway]) -> dict[str, CachedDirectory]:
    """One cached directory per gateway that verifies users by web service."""
    out = {}
    for gw in gateways:
        sm = gw.smartermail
        if sm.enabled and sm.user_verification == "web_service":
            out[gw.name] = CachedDirectory(SmarterMailDirectory(sm), ttl_s=sm.cache_ttl_s)
    return out


class RecipientVerifier:
    def __init__(self, directories: dict[str, CachedDirectory], node: str,
                 note: Callable[[object], None] = lambda record: None) -> None:
        self.directories = directories
        self.node = node
        self.note = note

    async def check(self, gateway: InboundGateway, address: str, message_id: str) -> tuple[Verdict, str]:
        directory = self.directories.get(gateway.name)
        if directory is None:
            return Verdict.OK, ""
        v = await directory.verify(address)
        if v.exists is None:
            if gateway.mode == "backup_mx":
                log.info("directory unreachable; backup MX accepts <%s> id=%s", address, message_id)
                return Verdict.OK, ""
            return Verdict.DIRECTORY_UNAVAILABLE, "directory_unavailable"
        if not v.exists:
            return Verdict.USER_UNKNOWN, "user_unknown"
        self.note(RecipientVerified(message_id=message_id, occurred_at=now_ms(), node=self.node,
                                    recipient=address, stage="ingress", method="web_service",
                                    cached=v.cached, stale=v.stale))
        return Verdict.OK, ""

    async def aclose(self) -> None:
        for d in self.directories.values():
            await d.aclose()
