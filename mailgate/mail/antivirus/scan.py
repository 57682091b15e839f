"""One message's virus verdict, the same for ingress (scan_at_data), the processor's scan step and `mailgate scan`.

Reads: the raw message, `AntivirusConfig` and a `ClamdClient`. Emits: a `Verdict`: clamd's (clean, infected with the
signatures, unscannable with the reason) combined with the walk of the message's files (`content.walk`: encrypted
archives and archives nested deeper than `archive_max_depth` are unscannable). Infected wins over unscannable, which
wins over clean. Raises `ScannerUnavailable` when no clamd host answered; the caller applies `when_unavailable`.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from mailgate.core.config import AntivirusConfig, Config, VirusActions
from mailgate.mail.antivirus.clamd import ClamdClient
from mailgate.mail.antivirus.content import Walk, walk

Result = Literal["clean", "infected", "unscannable", "error"]


@dataclass(frozen=True)
class Verdict:
    result: Result
    scanner: str
    duration_s: float
    signatures: tuple[str, ...] = ()
    reason: str = ""
    failed: tuple[str, ...] = ()
    walk: Walk | None = None
    """The message's files (None when it was not walked: over max_scan_bytes, or no verdict)."""

    def summary(self) -> str:
        """The verdict in a few words, for logs, tag headers and the CLI."""
        if self.result == "infected":
            return f"infected ({', '.join(self.signatures)})"
        if self.result in ("unscannable", "error"):
            return f"{self.result} ({self.reason})"
        return "clean"


def actions_for(cfg: Config, direction: str, inbound_gateway: str | None, login: str | None) -> VirusActions | None:
    """The virus actions for a message, or None when it is not scanned: inbound mail while antivirus is on (the
    gateway's actions; the defaults for a gateway no longer configured), outbound mail per `scan_outbound` (that of
    SMTP AUTH logins by default) with `antivirus.outbound`."""
    av = cfg.antivirus
    if not av.enabled:
        return None
    if direction == "inbound":
        gw = next((g for g in cfg.inbound_gateways if g.name == inbound_gateway), None)
        return gw.virus if gw is not None else VirusActions()
    if av.scan_outbound == "all" or (av.scan_outbound == "authenticated" and login):
        return av.outbound
    return None


async def scan_message(cfg: AntivirusConfig, body: bytes, client: ClamdClient) -> Verdict:
    """Scan `body` with clamd and walk its files; ScannerUnavailable when no clamd answered."""
    began = time.monotonic()
    clamd = await client.scan(body)
    files = None
    reasons = [clamd.reply.reason] if clamd.reply.status == "unscannable" else []
    if len(body) <= cfg.max_scan_bytes:
        files = await asyncio.to_thread(walk, body, cfg.archive_max_depth, cfg.max_scan_bytes)
        reasons += files.unscannable
    took = time.monotonic() - began
    if clamd.reply.status == "infected":
        return Verdict("infected", clamd.scanner, took, clamd.reply.signatures, "", clamd.failed, files)
    if reasons:
        return Verdict("unscannable", clamd.scanner, took, clamd.reply.signatures, "; ".join(reasons), clamd.failed,
                       files)
    return Verdict("clean", clamd.scanner, took, (), "", clamd.failed, files)
