"""Delivery: one attempt for one routed message, from the delivered index's check to the outcome's facts.

Reads: a MessageRouted the queue manager (egress/queue_manager.py) admitted; the delivered index
(egress/delivered_index.py: suppression and write-ahead); the route's targets (egress/targets.py), each tried in
order through a pooled SMTP session (egress/pool.py, egress/smtp_session.py) while the circuit breaker
(egress/health.py) hears how it went; DKIM keys (egress/dkim_signing.py) for outbound mail. Emits: the Outputs of
the attempt — DuplicateSuppressed, one DeliveryAttempted per target tried, the outcome's facts (egress/outcome.py)
and the index records that settle the write-ahead — for the queue manager to append. The only write here is the
write-ahead, appended while the session starts; DATA waits until Kafka acknowledged it.
Failover: a transient failure that cannot have delivered the message (no connection, a 4xx greeting or EHLO) tries
the route's next target (for a direct route, the next MX host); a definite refusal bounces; a connection lost after
DATA keeps its write-ahead mark and waits for the retry. A direct route's lookup that answers for every recipient
(null MX 5.1.10, NXDOMAIN 5.1.2, loop 5.4.6: bounced; DNS timeout or SERVFAIL 4.4.3: deferred) makes no
connection and no DeliveryAttempted.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from egress.delivered_index import DeliveredIndex, WriteAhead
from egress.dkim_signing import DkimSigner
from egress.errors import DeliveryError
from egress.health import GatewayHealth
from egress.mx import MxResolver, settings_of
from egress.outcome import OutcomePolicy, failure_replies, next_target
from egress.pool import SessionPool
from egress.targets import Target, TargetResolver
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail import pipeline_replies as replies
from mailgate.mail.dsn_params import DsnRequest
from mailgate.mail.outputs import Output, audit
from schemas import DeliveryAttempted, RecipientResult, SmtpReply

log = logging.getLogger("mailgate.egress")

Emit = Callable[[list[Output]], Awaitable[None]]


class Delivery:
    def __init__(self, cfg: Config, index: DeliveredIndex, pool: SessionPool, emit: Emit) -> None:
        self.cfg = cfg
        self.node = cfg.node_name
        self.index = index
        self.pool = pool
        self._emit = emit
        self.health = GatewayHealth()
        self.targets = TargetResolver(cfg, self.health)
        self.mx = MxResolver(settings_of(cfg))  # delivery.direct is not a live setting: built once
        self.outcome = OutcomePolicy(cfg, self.node)
        self.dkim = DkimSigner(cfg.dkim_signing)
        self.dkim_cfg = cfg.dkim_signing

    def reconfigure(self, cfg: Config) -> None:
        """A change in mail.config: targets (enabled gateways, their settings) and bounce settings follow it."""
        self.targets.reconfigure(cfg)
        self.outcome = OutcomePolicy(cfg, self.node)
        if cfg.dkim_signing != self.dkim_cfg:
            self._resign(cfg)

    def _resign(self, cfg: Config) -> None:
        """DKIM keys from mail.config (e.g. one the admin page generated): mail sent from now on is signed with
        them. A key that cannot be loaded keeps the previous keys in use, and says so."""
        try:
            self.dkim = DkimSigner(cfg.dkim_signing)
        except Exception as err:
            log.error("DKIM keys of the new configuration cannot be used (%s); signing with the previous ones",
                      type(err).__name__)
            return
        self.dkim_cfg = cfg.dkim_signing
        log.info("DKIM signing keys now for: %s", ", ".join(sorted(k.domain for k in cfg.dkim_signing.keys)) or "none")

    async def deliver(self, routed) -> list[Output]:
        """One attempt for one routed message: the Outputs to append."""
        todo, out = self.index.suppress(routed, self.node)
        if not todo:
            return out
        # Write-ahead: what is being sent is on record before DATA, so a crash mid-delivery leaves a trace. It is
        # appended while the session starts (MAIL, RCPT); SmtpSession.send sends DATA only once Kafka acknowledged it.
        ahead = self.index.write_ahead(routed.message_id, todo)
        write_ahead = asyncio.ensure_future(self._emit(ahead.marks))
        try:
            out += await self._attempt(routed, todo, ahead, write_ahead)
        finally:
            await asyncio.gather(write_ahead, return_exceptions=True)
        write_ahead.result()  # a write-ahead Kafka refused fails the attempt (deferred by the queue manager)
        return out + self.index.settle(ahead, out)

    async def _attempt(self, routed, todo: list[str], ahead: WriteAhead, before_data: asyncio.Future) -> list[Output]:
        """Try the route's targets in order for `todo`; the attempt events and the outcome. Recipients whose
        outcome is unknown (connection lost after DATA) go to `ahead.lost`. No DATA before `before_data`."""
        out: list[Output] = []
        mid = routed.message_id
        attempt = routed.attempt + 1
        now = now_ms()
        if now >= routed.expires_at:
            expired = [(r, replies.QUEUE_LIFETIME_EXCEEDED) for r in todo]
            return self.outcome.outcome(routed, expired, gateway="", host="", attempt=routed.attempt,
                                        now=now, error="queue lifetime exceeded")
        targets, answer = self.targets.targets(routed.route), None
        if routed.route.kind == "direct":  # its domain's MX hosts, looked up now
            found = await self.mx.lookup(routed.route.destination)
            targets, answer = self.targets.usable(found.targets), found.reply
        if answer is not None:  # null MX, NXDOMAIN, DNS failure, loop guard: no connection
            failed = [(r, answer) for r in todo]
            log.info("attempt id=%s domain=%s: %s", mid, routed.route.destination, answer, extra={"message_id": mid})
            return self.outcome.outcome(routed, failed, gateway=routed.route.destination, host="", attempt=attempt,
                                        now=now_ms(), error=None if answer.is_permanent() else answer.one_line())
        if not targets:
            none = [(r, replies.NO_USABLE_GATEWAY) for r in todo]
            return self.outcome.outcome(routed, none, gateway="", host="", attempt=attempt, now=now,
                                        error="no usable gateway for this route")
        last: DeliveryError | None = None
        for target in targets:
            started = time.monotonic()
            key = self.targets.health_key(target)
            try:
                results, session = await self._send(target, routed, todo, before_data)
            except DeliveryError as err:
                last = err
                self.health.record_failure(key)
                out.append(self._attempted(routed, attempt, target, todo, [], str(err), started, None, ahead.unknown))
                log.info("attempt id=%s gateway=%s host=%s failed: %s", mid, target.gateway, target.label, err,
                         extra={"message_id": mid})
                if err.may_have_been_delivered:
                    ahead.lost.extend(todo)  # keep their write-ahead mark: the retry says the server may have them
                if next_target(err):
                    continue
                break  # a definite refusal bounces; a message the server may have waits for the retry
            if any(rep.is_transient() for _, rep in results):
                self.health.record_failure(key)
            else:
                self.health.record_success(key)
            out.append(self._attempted(routed, attempt, target, todo, results, None, started, session, ahead.unknown))
            log.info("attempt id=%s gateway=%s host=%s mx=%s results=%s", mid, target.gateway, target.label,
                     target.mx or "-", ";".join(f"{r}={rep.code}" for r, rep in results), extra={"message_id": mid})
            return out + self.outcome.outcome(routed, results, gateway=target.gateway, host=target.label,
                                              attempt=attempt, now=now_ms(), next_hop_dsn=session.offers_dsn)
        return out + self.outcome.outcome(routed, failure_replies(last, todo), gateway="", host="", attempt=attempt,
                                          now=now_ms(), error=str(last) if last is not None else "no target tried")

    async def _send(self, target: Target, routed, rcpts, before_data: asyncio.Future):
        body = crlf_checked = routed.body or b""
        if routed.direction == "outbound" and self.dkim:  # the last edit: the bytes sent are the bytes signed
            body = self.dkim.sign(body, routed.message_id)
        crlf_only = routed.body_crlf_only and body is crlf_checked  # a signature added: check again
        for fresh_try in (False, True):
            reused = False  # a connect failure raises before the session exists
            try:
                async with self.pool.session(target) as session:
                    reused = session.sent > 0
                    results = await session.send(routed.mail_from, rcpts, body, before_data=before_data,
                                                 crlf_only=crlf_only, dsn=DsnRequest.of(routed))
                    return results, session
            except DeliveryError as err:
                # A pooled connection the server closed while idle fails at RSET/MAIL: retry once on a new one.
                if fresh_try or not reused or err.step not in ("mail", "rset"):
                    raise
        raise AssertionError("unreachable")

    def _attempted(self, routed, attempt, target, rcpts, results, error, started, session, unknown) -> Output:
        return audit(DeliveryAttempted(
            message_id=routed.message_id, occurred_at=now_ms(), node=self.node, attempt=attempt,
            gateway=target.gateway, host=target.host, port=target.port,
            tls_version=session.tls_version if session else None, tls_cipher=session.tls_cipher if session else None,
            recipients=list(rcpts),
            results=[RecipientResult(recipient=r, reply=SmtpReply(code=rep.code, enhanced_code=rep.enhanced_code,
                                                                  text=rep.text)) for r, rep in results],
            error=error, duration_ms=int((time.monotonic() - started) * 1000), outcome_unknown_recipients=unknown,
            mx_host=target.mx or None))
