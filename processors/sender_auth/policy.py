"""Sender authentication policy: SPF, DKIM and DMARC of inbound mail; Authentication-Results; score and action.

Reads: MessageReceived (client IP, HELO, MAIL FROM, body) and `cfg.sender_auth` (resolver, scores, DMARC actions).
Emits: SenderAuthenticated to mail.events (each result, the header added, the score, the action); for a DMARC
failure whose action is "discard", MessageDiscarded (reason `dmarc_reject` / `dmarc_quarantine`). Returns the body
with forged Authentication-Results removed and ours prepended, the score the spam classifier adds as scorer
`sender_auth`, and the disposition. Outbound mail, and all mail while disabled, passes unchanged.
DNS never crashes a message: a lookup without an answer is a `temperror` result (scored by `on_dns_failure`).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mailgate.core.config import Config, SenderAuthConfig
from mailgate.core.ids import now_ms
from mailgate.mail.authres.header import Method, add_results
from mailgate.mail.authres.resolver import Resolver
from mailgate.mail.outputs import Output, audit
from processors.sender_auth.dkim_check import DkimResult, check_dkim
from processors.sender_auth.dmarc import DmarcResult, check_dmarc
from processors.sender_auth.spf_check import SpfResult, check_spf
from schemas import DkimSignatureResult, MessageDiscarded, SenderAuthenticated

log = logging.getLogger("mailgate.sender_auth")


@dataclass(frozen=True)
class SenderAuthDecision:
    outputs: list[Output]
    body: bytes
    score: float | None
    """What the results add to the spam total; None when nothing was checked."""
    disposition: str  # deliver | discard

    @property
    def extra_scorers(self) -> list["FixedScore"]:
        """The spam scorer carrying `score` (none when nothing was checked)."""
        return [] if self.score is None else [FixedScore(self.score)]


class FixedScore:
    """A spam `Scorer` that gives the score sender authentication already computed for this message."""

    name = "sender_auth"
    weight = 1.0

    def __init__(self, value: float) -> None:
        self.value = value

    async def score(self, message: bytes, client_address: str, context: object = None) -> float | None:
        return self.value


@dataclass(frozen=True)
class Checks:
    spf: SpfResult
    dkim: list[DkimResult]
    dmarc: DmarcResult

    @property
    def dkim_summary(self) -> str:
        found = {r.result for r in self.dkim}
        return next((r for r in ("pass", "temperror", "fail") if r in found), "none")


def run_checks(resolver: Resolver, client_ip: str, helo: str, mail_from: str, message: bytes) -> Checks:
    """All three checks, blocking (called in a worker thread)."""
    spf_result = check_spf(resolver, client_ip, helo, mail_from)
    dkim_results = check_dkim(resolver, message)
    return Checks(spf_result, dkim_results, check_dmarc(resolver, message, spf_result, dkim_results))


def methods(c: Checks, helo: str) -> list[Method]:
    """The Authentication-Results clauses (RFC 8601 section 2.7) of the checks."""
    out = [Method("spf", c.spf.result, props=(("smtp.mailfrom", c.spf.mail_from), ("smtp.helo", helo)))]
    out += [Method("dkim", r.result, props=(("header.d", r.domain), ("header.s", r.selector), ("header.b", r.b)))
            for r in c.dkim] or [Method("dkim", "none")]
    comment = f"p={c.dmarc.policy}" if c.dmarc.policy else ""
    if c.dmarc.sampled_out:
        comment += " outside pct"
    out.append(Method("dmarc", c.dmarc.result, comment, (("header.from", c.dmarc.from_domain),)))
    return out


class SenderAuthPolicy:
    def __init__(self, cfg: Config, node: str, resolver: Resolver | None = None) -> None:
        self.cfg = cfg
        self.sa: SenderAuthConfig = cfg.sender_auth
        self.node = node
        self.authserv_id = self.sa.authserv_id or cfg.ingress.hostname
        self.resolver = resolver or (Resolver(self.sa.dns) if self.sa.enabled else None)

    async def __call__(self, received) -> SenderAuthDecision:
        body = received.body or b""
        if not self.sa.enabled or received.direction != "inbound" or self.resolver is None:
            return SenderAuthDecision([], body, None, "deliver")
        checks = await asyncio.to_thread(run_checks, self.resolver, received.client_address,
                                         received.client_helo, received.mail_from, body)
        new_body, header, removed = add_results(body, self.authserv_id, methods(checks, received.client_helo))
        action = self._action(checks.dmarc)
        score = self._score(checks) + self._level_bump(action)
        event = SenderAuthenticated(
            message_id=received.message_id, occurred_at=now_ms(), node=self.node, spf=checks.spf.result,
            spf_domain=checks.spf.domain, dkim=checks.dkim_summary,
            dkim_signatures=[DkimSignatureResult(domain=r.domain, selector=r.selector, result=r.result)
                             for r in checks.dkim],
            dmarc=checks.dmarc.result, dmarc_policy=checks.dmarc.policy, from_domain=checks.dmarc.from_domain,
            score=score, action=action, authentication_results=header, forged_headers_removed=removed)
        log.info("sender auth of %s: %s; score %.1f, action %s", received.message_id, header, score, action,
                 extra={"message_id": received.message_id})
        outputs = [audit(event)]
        if action == "discard":
            outputs.append(audit(MessageDiscarded(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                reason=f"dmarc_{checks.dmarc.policy}", headers=new_body.partition(b"\r\n\r\n")[0].decode(
                    "utf-8", "replace"))))
            return SenderAuthDecision(outputs, new_body, score, "discard")
        return SenderAuthDecision(outputs, new_body, score, "deliver")

    def _action(self, dmarc: DmarcResult) -> str:
        if dmarc.result != "fail":
            return "none"
        if dmarc.policy == "reject":
            return self.sa.dmarc_reject_action
        if dmarc.policy == "quarantine":
            return self.sa.dmarc_quarantine_action
        return "none"

    def _level_bump(self, action: str) -> float:
        return getattr(self.cfg.spam, f"{action}_threshold", 0.0) if action in ("low", "medium", "high") else 0.0

    def _score(self, c: Checks) -> float:
        s = self.sa.scores
        total = 0.0
        for method, result in (("spf", c.spf.result), ("dkim", c.dkim_summary), ("dmarc", c.dmarc.result)):
            if result == "temperror":
                total += s.temperror if self.sa.on_dns_failure == "temperror" else getattr(s, f"{method}_pass")
            else:
                total += getattr(s, f"{method}_{result}", 0.0)
        return total

    async def aclose(self) -> None:
        pass
