"""The scan step: scan a message for viruses and dangerous attachments, record the verdict, apply the action.

Reads: MessageReceived (and its body), `cfg.antivirus` (scanners, limits, when_unavailable, outbound actions) and
the inbound gateway's `virus` actions. Emits: MessageScanned to mail.events, then per the action: nothing more
(deliver; deliver_and_tag with the verdict in the tag header; strip: the parts with a dangerous file replaced by a
note), MessageQuarantined with the MessageRouted to deliver
on release (to mail.quarantine, and its audit copy; level `virus` or `unscannable`), MessageDiscarded (discard), or
MessageBounced with a DSN to a non-null sender (bounce). Returns the (possibly tagged) body and the disposition.

Which mail: inbound mail of every gateway while `antivirus.enabled`; outbound mail per `antivirus.scan_outbound`
(that of SMTP AUTH logins by default). A message ingress found clean at DATA (scan_at_data,
MessageReceived.data_scan_result) is not scanned again: its MessageScanned says scanned_at ingress. When no scanner
answers: under `tempfail` the step retries with back-off (`mailgate/core/backoff.py`) until one does, so the
message (and its partition) waits in Kafka and is never passed unscanned; under `accept` it is delivered with
result `error` and an `Unscanned` tag header.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

from mailgate.core import metrics, topics
from mailgate.core.backoff import Backoff
from mailgate.core.config import Config, VirusActions
from mailgate.core.ids import new_message_id, now_ms
from mailgate.mail.antivirus.clamd import ClamdClient, ScannerUnavailable
from mailgate.mail.antivirus.scan import Verdict, actions_for, scan_message, scanned_event
from mailgate.mail.dsn import build_dsn, dsn_received, should_send_dsn
from mailgate.mail.antivirus.rules import strip, strongest
from mailgate.mail.headers import header_block, header_values, set_header
from mailgate.mail.outputs import Output, audit
from mailgate.mail.pipeline_replies import content_rejected
from processors.routing import RoutingPolicy
from schemas import MessageBounced, MessageDiscarded, MessageQuarantined, encode

log = logging.getLogger("mailgate.virus")

QUARANTINE_LEVELS = {"infected": "virus", "unscannable": "unscannable"}
"""MessageQuarantined.level of a message held by the scan step (a spam level otherwise)."""


@dataclass(frozen=True)
class VirusDecision:
    outputs: list[Output]
    body: bytes
    disposition: str  # deliver | quarantine | discard | bounce


class VirusPolicy:
    def __init__(self, cfg: Config, node: str, route: RoutingPolicy | None = None, version: str | None = None,
                 client: ClamdClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.cfg = cfg
        self.av = cfg.antivirus
        self.node = node
        self.version = version
        self.route = route or RoutingPolicy(cfg, node)
        self.client = client or ClamdClient(self.av, on_try=metrics.clamd_try("processor"))
        self.sleep = sleep

    async def __call__(self, received, recipients: list[str]) -> VirusDecision:
        body = received.body or b""
        actions = actions_for(self.cfg, received.direction, received.inbound_gateway, received.client_auth)
        if actions is None:
            return VirusDecision([], body, "deliver")
        verdict, attempts = await self.scan(received, body, actions)
        action = choose_action(verdict, actions)
        stripped = None
        if action == "strip":
            assert verdict.walk is not None
            stripped = strip(body, verdict.walk.spans, list(verdict.findings))
            action = "strip" if stripped is not None else "quarantine"  # a single-part message: nothing to keep
        log.info("virus scan of %s: %s by %s in %.3fs; action %s", received.message_id, verdict.summary(),
                 verdict.scanner or "-", verdict.duration_s, action, extra={"message_id": received.message_id})
        broken = stripped is not None and bool(header_values(body, "DKIM-Signature"))
        outputs = [audit(self._scanned(received, verdict, action, attempts, broken))]
        if action == "deliver":
            return VirusDecision(outputs, body, "deliver")
        if stripped is not None:
            return VirusDecision(outputs, stripped, "deliver")
        if action == "deliver_and_tag":
            return VirusDecision(outputs, set_header(body, actions.tag_header, tag_value(verdict)), "deliver")
        if action == "quarantine":
            routed = self.route.routed(received, recipients=recipients, body=body)
            held = MessageQuarantined(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                level=QUARANTINE_LEVELS[verdict.result], total_score=0.0, headers=_headers(body),
                routed=encode(routed))
            return VirusDecision(outputs + [Output(topics.QUARANTINE, received.message_id, held), audit(held)],
                                 body, "quarantine")
        if action == "discard":
            outputs.append(audit(MessageDiscarded(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                reason=f"virus_{verdict.result}", headers=_headers(body))))
            return VirusDecision(outputs, body, "discard")
        return VirusDecision(outputs + self._bounce(received, recipients, verdict), body, "bounce")

    async def scan(self, received, body: bytes, actions: VirusActions) -> tuple[Verdict, int]:
        """(the verdict, tries); a clean verdict made at DATA (scan_at_data) as it is, without asking clamd
        again; else scanned, and under tempfail tried again with back-off until a scanner answers."""
        if reused_at_data(received):
            return Verdict("clean", received.data_scan_scanner, received.data_scan_duration_ms / 1000), 1
        backoff = Backoff(self.av.retry_first_s, self.av.retry_max_s, self.sleep)
        began, tries = time.monotonic(), 0
        while True:
            tries += 1
            try:
                verdict = await scan_message(self.av, body, self.client, actions.attachments)
            except ScannerUnavailable as err:
                if self.av.when_unavailable == "accept":
                    log.warning("virus scan of %s: no scanner answered; delivered unscanned (when_unavailable "
                                "accept): %s", received.message_id, err, extra={"message_id": received.message_id})
                    return Verdict("error", "", time.monotonic() - began, reason=f"no scanner answered: {err}",
                                   failed=tuple(str(err).split("; "))), tries
                log.warning("virus scan of %s failed (try %d), retrying in %.0fs: %s", received.message_id, tries,
                            backoff.delay_s, err, extra={"message_id": received.message_id})
                await backoff.wait()
                continue
            return dataclasses.replace(verdict, duration_s=time.monotonic() - began), tries

    def _scanned(self, received, verdict: Verdict, action: str, attempts: int, broken: bool):
        return scanned_event(verdict, message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                             action=action, version=self.version, attempts=attempts, broken=broken,
                             scanned_at="ingress" if reused_at_data(received) else "processor")

    def _bounce(self, received, recipients: list[str], verdict: Verdict) -> list[Output]:
        reply = content_rejected(verdict.summary())
        out: list[Output] = []
        headers = header_block(received.body or b"")
        dsn_id = None
        if should_send_dsn(received.mail_from, headers):
            now = now_ms()
            dsn_id = new_message_id(now)
            dsn = build_dsn(reporting_mta=self.cfg.delivery.helo_name, original_message_id=received.message_id,
                            original_mail_from=received.mail_from, failed=[(r, reply) for r in recipients],
                            original_headers=headers,
                            arrival_date=datetime.fromtimestamp(received.occurred_at / 1000, timezone.utc),
                            reason="the message was refused by the virus scan",
                            from_local=self.cfg.delivery.bounce_from)
            record = dsn_received(self.cfg, self.node, dsn_id, received.mail_from, dsn, now)
            out += [Output(topics.RECEIVED, dsn_id, record), audit(record)]
        out.insert(0, audit(MessageBounced(message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                                           recipients=list(recipients), reason=str(reply), dsn_message_id=dsn_id)))
        return out

    async def aclose(self) -> None:
        pass


def choose_action(verdict: Verdict, actions: VirusActions) -> str:
    """deliver, deliver_and_tag, quarantine, discard, bounce or strip: a signature takes the gateway's infected
    action; an attachment rule its own (reject, which only scan_at_data can do, takes the infected action here);
    unscannable mail the unscannable action; no scanner under accept is delivered tagged."""
    if verdict.result == "clean":
        return "deliver"
    if verdict.result == "error":  # when_unavailable accept: delivered, and the tag says it was not scanned
        return "deliver_and_tag"
    if verdict.result == "unscannable":
        return actions.unscannable
    if verdict.signatures:
        return actions.infected
    wanted = strongest(list(verdict.findings))
    return actions.infected if wanted == "reject" else str(wanted)


def reused_at_data(received) -> bool:
    """Whether ingress scanned the message at DATA and found it clean (MessageReceived.data_scan_result): the
    scan step reuses that verdict rather than scanning the same bytes again. Any other verdict made at DATA
    (unscannable; a rule that does not reject) is scanned again, for the walk and findings its action needs."""
    return received.data_scan_result == "clean"


def tag_value(verdict: Verdict) -> str:
    """The tag header's value: `Infected (<signatures>)`, `Unscannable (<reason>)`, `Unscanned (<why>)`."""
    word = {"infected": "Infected", "unscannable": "Unscannable", "error": "Unscanned"}[verdict.result]
    detail = (", ".join(verdict.signatures) or verdict.summary()) if verdict.result == "infected" else verdict.reason
    return f"{word} ({detail})"[:900]


def _headers(body: bytes) -> str:
    return header_block(body).decode("utf-8", "replace")
