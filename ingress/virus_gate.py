"""scan_at_data: ingress asks the virus scanner before it answers DATA, for gateways (and outbound mail) that want it.

Reads: the message as received, its direction, gateway and login, and the transaction's configuration version
(`antivirus`, the gateway's `virus.scan_at_data`). Emits: the refusal to give instead of queueing, or None to go on
and queue: infected, or a file an attachment rule with action reject matches → 554 5.7.1 naming the signature or
the file and rule (nothing is accepted, so nothing is written to Kafka and there
is no backscatter); no scanner answering under when_unavailable tempfail → 451 4.3.0; under accept, unscannable or
clean → None (the processor scans the queued message again and applies the other actions). The same client,
limits and verdict as the processor's scan step (mailgate/mail/antivirus).
"""
from __future__ import annotations

import logging

from ingress.replies import Verdict
from mailgate.core import metrics
from mailgate.core.config import Config
from mailgate.mail.antivirus.clamd import ClamdClient, ScannerUnavailable
from mailgate.mail.antivirus.rules import strongest
from mailgate.mail.antivirus.scan import actions_for, scan_message

log = logging.getLogger("mailgate.ingress")


async def scan_at_data(cfg: Config, data: bytes, *, message_id: str, client: str, direction: str,
                       gateway: str | None, login: str | None) -> str | None:
    """The reply refusing the message, or None to queue it."""
    actions = actions_for(cfg, direction, gateway, login)
    if actions is None or not actions.scan_at_data:
        return None
    extra = {"message_id": message_id}
    try:
        clamd = ClamdClient(cfg.antivirus, on_try=metrics.clamd_try("ingress"))
        verdict = await scan_message(cfg.antivirus, data, clamd, actions.attachments)
    except ScannerUnavailable as err:
        if cfg.antivirus.when_unavailable == "accept":
            log.warning("scan at DATA id=%s: no scanner answered; queued for the processor's scan (when_unavailable "
                        "accept): %s", message_id, err, extra=extra)
            return None
        metrics.INGRESS_REJECTED_MESSAGES.labels("virus_scanner_unavailable").inc()
        log.warning("tempfail data id=%s client=%s reason=virus_scanner_unavailable: %s", message_id, client, err,
                    extra=extra)
        return Verdict.VIRUS_SCANNER_UNAVAILABLE.reply()
    if verdict.result == "infected" and (verdict.signatures or strongest(list(verdict.findings)) == "reject"):
        metrics.INGRESS_REJECTED_MESSAGES.labels("virus" if verdict.signatures else "attachment").inc()
        log.info("reject data id=%s client=%s reason=%s signatures=%s scanner=%s", message_id, client,
                 "virus" if verdict.signatures else "attachment", ",".join(verdict.signatures) or "-", verdict.scanner,
                 extra=extra)
        return Verdict.VIRUS_FOUND.reply(what=verdict.summary())
    log.info("scan at DATA id=%s: %s by %s in %.3fs", message_id, verdict.summary(), verdict.scanner,
             verdict.duration_s, extra=extra)
    return None
