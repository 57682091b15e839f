"""One message's virus verdict, the same for ingress (scan_at_data), the processor's scan step and `mailgate scan`.

Reads: the raw message, `AntivirusConfig` and a `ClamdClient`. Emits: a `Verdict`: clamd's (clean, infected with the
signatures, unscannable with the reason) combined with the walk of the message's files (`content.walk`: encrypted
archives and archives nested deeper than `archive_max_depth` are unscannable). Infected wins over unscannable, which
wins over clean; attachment rules (`rules`) that match make it infected too, with their findings. Raises
`ScannerUnavailable` when no clamd host answered; the caller applies `when_unavailable`. `scanned_event` is the
verdict as the MessageScanned event that ingress (a refusal at DATA) and the processor record.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from mailgate.core.config import AntivirusConfig, AttachmentRules, Config, VirusActions
from mailgate.mail.antivirus.clamd import ClamdClient
from mailgate.mail.antivirus.content import Walk, walk
from mailgate.mail.antivirus.rules import Finding, check
from schemas import AttachmentFinding, MessageScanned

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
    findings: tuple[Finding, ...] = ()
    """Attachment rules that matched (with or without a signature)."""

    def summary(self) -> str:
        """The verdict in a few words, for logs, tag headers, replies and the CLI."""
        if self.result == "infected" and self.signatures:
            return f"infected ({', '.join(self.signatures)})"
        if self.result == "infected" and self.findings:
            f = self.findings[0]
            return f"dangerous file {f.path} (rule {f.rule}: {f.why})"
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


async def scan_message(cfg: AntivirusConfig, body: bytes, client: ClamdClient,
                       rules: AttachmentRules | None = None) -> Verdict:
    """Scan `body` with clamd and walk its files, checking them against `rules`; ScannerUnavailable when no clamd
    answered. Result: infected when clamd found a signature or a rule matched (the findings say which), else
    unscannable with the reasons, else clean."""
    began = time.monotonic()
    clamd = await client.scan(body)
    files = None
    reasons = [clamd.reply.reason] if clamd.reply.status == "unscannable" else []
    if len(body) <= cfg.max_scan_bytes:
        files = await asyncio.to_thread(walk, body, cfg.archive_max_depth, cfg.max_scan_bytes)
        reasons += files.unscannable
    findings = tuple(check(files.files, rules)) if files is not None and rules is not None else ()
    took = time.monotonic() - began
    if clamd.reply.status == "infected" or findings:
        signatures = clamd.reply.signatures if clamd.reply.status == "infected" else ()
        return Verdict("infected", clamd.scanner, took, signatures, "", clamd.failed, files, findings)
    if reasons:
        return Verdict("unscannable", clamd.scanner, took, clamd.reply.signatures, "; ".join(reasons), clamd.failed,
                       files)
    return Verdict("clean", clamd.scanner, took, (), "", clamd.failed, files)


def scanned_event(verdict: Verdict, *, message_id: str, occurred_at: int, node: str, action: str,
                  version: str | None, attempts: int = 1, broken: bool = False, **where) -> MessageScanned:
    """The verdict as a MessageScanned; `where` are its scanned_at, reply and envelope fields (a refusal at DATA)."""
    return MessageScanned(
        message_id=message_id, occurred_at=occurred_at, node=node, scanner=verdict.scanner,
        duration_ms=int(verdict.duration_s * 1000), result=verdict.result, signatures=list(verdict.signatures),
        reason=verdict.reason, action=action, attempts=attempts, failed_scanners=list(verdict.failed),
        findings=[AttachmentFinding(path=f.path, detected_type=f.detected_type, rule=f.rule, why=f.why,
                                    action=f.action) for f in verdict.findings],
        body_signature_broken=broken, config_version=version, **where)
