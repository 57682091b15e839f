"""scan_at_data: ingress asks the virus scanner before it answers DATA, for gateways (and outbound mail) that want it.

Reads: the message as received, its envelope (client, sender, recipients), direction, gateway and login, and the
transaction's configuration version (`antivirus`, the gateway's `virus.scan_at_data`). Emits: a `DataScan`: the
refusal to give instead of queueing, or None to go on and queue, and the verdict. Infected, or a file an attachment
rule with action reject matches → 554 5.7.1 naming the signature or the file and rule (nothing is accepted, so
nothing is written to mail.received and there is no backscatter); no scanner answering under when_unavailable
tempfail → 451 4.3.0. Each refusal is a `MessageScanned` (scanned_at ingress, action reject or tempfail, the reply
and the envelope) handed to `note` (the Publisher's `note_until_stored`: retried in the background, bounded, never
waited for). Under accept, unscannable or clean → None: the handler puts the verdict in MessageReceived
(data_scan_*); the processor reuses a clean one and scans the rest again. The same client, limits and verdict as
the processor's scan step (mailgate/mail/antivirus).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ingress.replies import Verdict as Reply
from mailgate.core import metrics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail.antivirus.clamd import ClamdClient, ScannerUnavailable
from mailgate.mail.antivirus.rules import strongest
from mailgate.mail.antivirus.scan import Verdict, actions_for, scan_message, scanned_event

log = logging.getLogger("mailgate.ingress")


@dataclass(frozen=True)
class DataScan:
    refusal: str | None = None
    """The reply refusing the message, or None to queue it."""
    verdict: Verdict | None = None
    """The verdict of a message queued after a scan (clean or unscannable), for MessageReceived.data_scan_*."""

    def received_fields(self) -> dict:
        """MessageReceived's data_scan_* fields (none when the message was not scanned at DATA)."""
        v = self.verdict
        if v is None or self.refusal is not None:
            return {}
        return {"data_scan_result": v.result, "data_scan_scanner": v.scanner,
                "data_scan_duration_ms": int(v.duration_s * 1000)}


NOT_SCANNED = DataScan()


async def scan_at_data(cfg: Config, data: bytes, *, message_id: str, client: str, direction: str,
                       gateway: str | None, login: str | None, mail_from: str, rcpt_to: list[str],
                       version: str | None, note: Callable[[object], None]) -> DataScan:
    """Scan `data` if its gateway wants it at DATA; a refusal is noted as a MessageScanned."""
    actions = actions_for(cfg, direction, gateway, login)
    if actions is None or not actions.scan_at_data:
        return NOT_SCANNED
    extra = {"message_id": message_id}

    def refuse(verdict: Verdict, action: str, reply: str) -> DataScan:
        note(scanned_event(verdict, message_id=message_id, occurred_at=now_ms(), node=cfg.node_name, action=action,
                           version=version, scanned_at="ingress", reply=reply, client_address=client,
                           mail_from=mail_from, rcpt_to=list(rcpt_to)))
        return DataScan(reply, verdict)

    try:
        clamd = ClamdClient(cfg.antivirus, on_try=metrics.clamd_try("ingress"))
        verdict = await scan_message(cfg.antivirus, data, clamd, actions.attachments)
    except ScannerUnavailable as err:
        if cfg.antivirus.when_unavailable == "accept":
            log.warning("scan at DATA id=%s: no scanner answered; queued for the processor's scan (when_unavailable "
                        "accept): %s", message_id, err, extra=extra)
            return NOT_SCANNED
        metrics.INGRESS_REJECTED_MESSAGES.labels("virus_scanner_unavailable").inc()
        log.warning("tempfail data id=%s client=%s reason=virus_scanner_unavailable: %s", message_id, client, err,
                    extra=extra)
        return refuse(Verdict("error", "", 0.0, reason=f"no scanner answered: {err}",
                              failed=tuple(str(err).split("; "))),
                      "tempfail", Reply.VIRUS_SCANNER_UNAVAILABLE.reply())
    if verdict.result == "infected" and (verdict.signatures or strongest(list(verdict.findings)) == "reject"):
        metrics.INGRESS_REJECTED_MESSAGES.labels("virus" if verdict.signatures else "attachment").inc()
        log.info("reject data id=%s client=%s reason=%s signatures=%s scanner=%s", message_id, client,
                 "virus" if verdict.signatures else "attachment", ",".join(verdict.signatures) or "-", verdict.scanner,
                 extra=extra)
        return refuse(verdict, "reject", Reply.VIRUS_FOUND.reply(what=verdict.summary()))
    log.info("scan at DATA id=%s: %s by %s in %.3fs", message_id, verdict.summary(), verdict.scanner,
             verdict.duration_s, extra=extra)
    return DataScan(None, verdict)
