"""Spam policy: score inbound mail, choose its level, apply the inbound gateway's actions for that level.

Reads: MessageReceived (and its body), `cfg.spam` (scorers, thresholds, on_scanner_failure) and the inbound
gateway's `spam_actions`. Emits: MessageClassified to mail.events; for quarantine, MessageQuarantined with the body
and the MessageRouted to deliver on release (to mail.quarantine, and its audit copy); for delete, MessageDiscarded.
Returns the (possibly edited) body and the disposition. All mail while spam is disabled, and outbound mail unless
`spam.scan_outbound`, passes unchanged; scanned outbound mail is classified (the scanners get the login) and gets
the standard headers, but no gateway's actions. When a scanner is unavailable and on_scanner_failure is "retry", the
call retries with back-off (`mailgate/core/backoff.py`) until the scanner answers: the message (and its partition)
waits in Kafka, nothing is lost or passed unscored.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from mailgate.core import topics
from mailgate.core.backoff import Backoff
from mailgate.core.config import Config, ConfigError, SpamActions
from mailgate.core.ids import now_ms
from mailgate.mail.outputs import Output, audit
from processors.routing import RoutingPolicy
from processors.spam.scorers import DnsListScore, SmtpContext
from processors.spam import (ActionOutcome, Classification, ScannerUnavailable, Scorer, actions_for, apply_actions,
                             build_scorers, check_actions, classify, header_block)
from schemas import MessageClassified, MessageDiscarded, MessageQuarantined, ScorerScore, encode

log = logging.getLogger("mailgate.spam")

RETRY_FIRST_S = 1.0
"""First wait after a scanner failed (on_scanner_failure "retry"); doubled after each failure."""
RETRY_MAX_S = 30.0
"""Longest wait between two tries."""


@dataclass(frozen=True)
class SpamDecision:
    outputs: list[Output]
    body: bytes
    disposition: str  # deliver | delete | quarantine


def check_gateway_actions(cfg: Config) -> None:
    """ConfigError naming the gateway and action when any inbound gateway's spam action could never be applied."""
    for gw in cfg.inbound_gateways:
        try:
            check_actions(gw.spam_actions)
        except ValueError as err:
            raise ConfigError(f"inbound_gateways.{gw.name}.{err}") from None


class SpamPolicy:
    def __init__(self, cfg: Config, node: str, route: RoutingPolicy | None = None,
                 scorers: Sequence[Scorer] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, version: str | None = None) -> None:
        self.cfg = cfg
        self.node = node
        self.version = version
        self.route = route or RoutingPolicy(cfg, node)
        check_gateway_actions(cfg)
        self.scorers = list(build_scorers(cfg.spam) if scorers is None else scorers)
        self.actions = {gw.name: gw.spam_actions for gw in cfg.inbound_gateways}
        self.sleep = sleep

    async def __call__(self, received, recipients: list[str], extra_scorers: Sequence[Scorer] = ()) -> SpamDecision:
        """`extra_scorers`: scores computed earlier for this message (sender authentication), summed with the rest."""
        body = received.body or b""
        if not self.cfg.spam.enabled or (received.direction != "inbound" and not self.cfg.spam.scan_outbound):
            return SpamDecision([], body, "deliver")
        verdict = await self.scan(received, body, extra_scorers)
        spam_actions = self.actions.get(received.inbound_gateway or "", SpamActions())
        outcome = apply_actions(body, verdict, actions_for(verdict.level, spam_actions),
                                self.cfg.spam.standard_headers)
        outputs = [audit(self._classified(received.message_id, verdict, outcome))]
        if outcome.disposition == "delete":
            outputs.append(audit(MessageDiscarded(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node, reason="spam_delete",
                headers=_headers(outcome.body))))
        elif outcome.disposition == "quarantine":
            routed = self.route.routed(received, recipients=recipients, body=outcome.body)  # split on release
            held = MessageQuarantined(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node, level=verdict.level,
                total_score=verdict.total, headers=_headers(outcome.body), routed=encode(routed))
            outputs += [Output(topics.QUARANTINE, received.message_id, held), audit(held)]
        return SpamDecision(outputs, outcome.body, outcome.disposition)

    async def scan(self, received, body: bytes, extra_scorers: Sequence[Scorer] = ()) -> Classification:
        """Classify the message; in "retry" mode, try again (1 s doubling to 30 s) until every scanner answers."""
        backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S, self.sleep)
        tries = 0
        if received.dnsbl_score:  # the DNS lists' score of its client, recorded by ingress, joins the total
            extra_scorers = [*extra_scorers, DnsListScore(received.dnsbl_score, self.cfg.spam.dnsbl_weight)]
        while True:
            began = time.monotonic()
            try:
                verdict = await classify([*self.scorers, *extra_scorers], body, received.client_address,
                                         self.cfg.spam, SmtpContext.of(received))
            except ScannerUnavailable as err:
                tries += 1
                log.warning("spam scan of %s failed (try %d), retrying in %.0fs: %s",
                            received.message_id, tries, backoff.delay_s, err)
                await backoff.wait()
                continue
            log.info("spam scan of %s: level %s, total %.1f in %.3fs", received.message_id, verdict.level,
                     verdict.total, time.monotonic() - began)
            return verdict

    def _classified(self, message_id: str, verdict: Classification, outcome: ActionOutcome):
        return MessageClassified(
            message_id=message_id, occurred_at=now_ms(), node=self.node, level=verdict.level,
            total_score=verdict.total,
            scores=[ScorerScore(scorer=r.name, score=r.score, weight=r.weight, error=r.error)
                    for r in verdict.results],
            actions=list(outcome.applied), config_version=self.version)

    async def aclose(self) -> None:
        pass


def _headers(body: bytes) -> str:
    return header_block(body).decode("utf-8", "replace")
