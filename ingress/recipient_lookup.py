"""User verification at RCPT time: ask the inbound gateway's directory (through its 10-minute cache) whether the
recipient exists, so unknown users are refused in the SMTP dialogue and never bounced later (no backscatter); and,
for a Backup MX with `defer_while_primary_up`, send the client back to the primary while the primary answers.

Reads: the gateways' `smartermail` settings, a TCP probe of Backup MX primaries, and cache purge requests on
`mail.config` (applied by the process's config follower). Emits: a Verdict and a reason, and RecipientVerified
audit events.
Directory unreachable: a cached answer is used even if stale; with none, Domain Forward tempfails (451 4.4.3) and
Backup MX accepts (its primary, and so its directory, is expected to be down when it receives mail). A directory
that answers something unrecognised is not down: both modes tempfail (451 4.4.3).
"""
from __future__ import annotations

import logging
from typing import Callable

from ingress.primary_probe import PrimaryProbe
from ingress.replies import Verdict
from mailgate.core.config import Config, InboundGateway
from mailgate.core.ids import now_ms
from mailgate.mail.directory import CachedDirectory, build_directories
from mailgate.mail.directory.build import build_domain_lists, verification_method
from mailgate.mail.directory.domains import CachedDomainList
from mailgate.mail.directory.live import LiveDirectories
from schemas import RecipientVerified

log = logging.getLogger("mailgate.ingress.verification")

__all__ = ["RecipientVerifier", "build_directories"]


VERIFIED = "verified"
"""The reason `check` gives with OK when the directory confirmed the recipient (a fresh answer)."""



class RecipientVerifier:
    def __init__(self, directories: dict[str, CachedDirectory], node: str,
                 note: Callable[[object], None] = lambda record: None, probe: PrimaryProbe | None = None,
                 domain_lists: dict[str, CachedDomainList] | None = None) -> None:
        self.live = LiveDirectories([], directories, {} if domain_lists is None else domain_lists)
        self.directories = self.live.mapping
        self.domain_lists: dict[str, CachedDomainList] = self.live.domain_lists
        """The cached SmarterMail domain lists of web_service domain verification, by gateway (ingress.policy asks
        them; kept here so that they are rebuilt, purged and closed with the directories)."""
        self.node = node
        self.note = note
        self.probe = probe or PrimaryProbe()

    @classmethod
    def for_config(cls, cfg: Config, note: Callable[[object], None]) -> "RecipientVerifier":
        """The verifier of an ingress process (its caches are purged through `mail.directory.purge.follow_purges`)."""
        verifier = cls(build_directories(cfg.inbound_gateways), cfg.node_name, note,
                       domain_lists=build_domain_lists(cfg.inbound_gateways))
        verifier.live.gateways = list(cfg.inbound_gateways)
        return verifier

    def reconfigure(self, cfg: Config) -> None:
        """Directories for the new gateways: unchanged ones keep their cache; a changed or removed gateway's old
        directory is closed once transactions that began before the change are over (`LiveDirectories`)."""
        self.live.reconfigure(cfg.inbound_gateways)

    async def check(self, gateway: InboundGateway, address: str, message_id: str,
                    directories: dict[str, CachedDirectory] | None = None,
                    version: str | None = None) -> tuple[Verdict, str]:
        if gateway.mode == "backup_mx" and gateway.defer_while_primary_up and await self.probe.is_up(gateway):
            return Verdict.PRIMARY_UP, "primary_up"
        directory = (self.directories if directories is None else directories).get(gateway.name)
        if directory is None:
            return Verdict.OK, ""
        v = await directory.verify(address)
        if v.exists is None:
            if gateway.mode == "backup_mx" and not v.unrecognised:
                log.info("directory unreachable; backup MX accepts <%s> id=%s", address, message_id)
                return Verdict.OK, ""
            log.info("directory unreachable; tempfail <%s> id=%s", address, message_id)
            return Verdict.DIRECTORY_UNAVAILABLE, "directory_unavailable"
        if not v.exists:
            return Verdict.USER_UNKNOWN, "user_unknown"
        self.note(RecipientVerified(message_id=message_id, occurred_at=now_ms(), node=self.node,
                                    recipient=address, stage="ingress", method=verification_method(gateway),
                                    cached=v.cached, stale=v.stale, config_version=version))
        return Verdict.OK, "" if v.stale else VERIFIED

    async def aclose(self) -> None:
        await self.probe.aclose()
        await self.live.aclose()
