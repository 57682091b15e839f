"""Verification policy (authoritative, replayable): re-check each inbound recipient's domain and mailbox against its
gateway's domain verification and directory.

Reads: MessageReceived, the gateways' `smartermail` settings (through a per-process 10-minute cache, purged by
`CachePurgeRequested` on `mail.config`, which the processor's config follower applies). Emits: the recipients that
pass; RecipientVerified (stage processor) for each checked recipient; RecipientRejected (stage processor) for a
recipient the directory says does not exist, plus
one DSN for them to a non-null sender, as a new MessageReceived from <> on mail.received (and its audit copy).

Directory unreachable (and no cached answer, fresh or stale): the recipient is KEPT — ingress already decided at
RCPT time (and a Backup MX accepts exactly when the primary's directory is down), so failing open here loses nothing
and bounces nothing wrongly; it is recorded as RecipientVerified(method="fail_open", stale=true) and a log line.
Outbound mail and gateways without web-service verification pass unchecked.

Domains (domain verification `web_service`): ingress's decision stands while the SmarterMail domain list it used is
younger than the gateway's cache TTL and was not stale (`MessageReceived.domain_list_fetched_at`), so one fetch serves
both stages; otherwise (a replay, a stale list, a record of an older release) each recipient's domain is decided
again through this process's cached list (`mailgate.mail.directory.domains`). A domain no longer accepted drops the
recipient (RecipientRejected reason domain_not_accepted, 554 5.7.1, with the DSN); no list to be had keeps it
(fail open, like the directory).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from mailgate.mail.addresses import domain_of
from mailgate.mail.dsn import build_dsn, dsn_received, should_send_dsn
from mailgate.mail.dsn_params import DsnRequest
from mailgate.mail.headers import header_block
from mailgate.mail import pipeline_replies as replies
from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import new_message_id, now_ms
from mailgate.mail.directory import CachedDirectory, Verification, build_directories
from mailgate.mail.directory.build import verification_method
from mailgate.mail.directory.domains import (WEB_SERVICE, CachedDomainList, DomainDecision, decide_domain,
                                             domain_fields, uses_web_service_domains)
from mailgate.mail.outputs import Output, audit
from mailgate.mail.smtp_reply import Reply
from schemas import RecipientRejected, RecipientVerified

log = logging.getLogger("mailgate.processor.verification")

USER_UNKNOWN = replies.USER_UNKNOWN
DOMAIN_NOT_ACCEPTED = replies.DOMAIN_NOT_ACCEPTED
"""The reply a rejected recipient's DSN reports (the one ingress would have given at RCPT)."""

FOLLOWER_READY_S = 10.0
"""Longest wait, before the first check, for the purge follower to reach the end of mail.config."""


class VerificationPolicy:
    def __init__(self, cfg: Config, node: str,
                 directories: dict[str, CachedDirectory] | None = None,
                 version: str | None = None, domain_lists: dict[str, CachedDomainList] | None = None) -> None:
        """`directories` given: they are shared across configuration versions (the pipeline owns and closes them);
        else this policy builds and owns its own."""
        self.cfg = cfg
        self.node = node
        self.version = version
        self.gateways = {gw.name: gw for gw in cfg.inbound_gateways}
        self.directories = build_directories(cfg.inbound_gateways) if directories is None else directories
        self._owns = directories is None
        self.domain_lists: dict[str, CachedDomainList] = domain_lists or {}
        """The cached SmarterMail domain lists (owned and closed by the pipeline)."""
        self.config_following: asyncio.Event | None = None
        """Set by the process's mail.config follower once later purges will be applied (None: nothing to wait for)."""
        self._started = False

    async def _start(self) -> None:
        """Before the first check, wait (bounded) for the config follower, so a purge sent from now on is applied."""
        self._started = True
        if self.config_following is None:
            return
        try:
            await asyncio.wait_for(self.config_following.wait(), FOLLOWER_READY_S)
        except asyncio.TimeoutError:
            log.warning("mail.config follower not ready after %.0f s; verifying anyway", FOLLOWER_READY_S)

    async def __call__(self, received) -> tuple[list[Output], list[str]]:
        """(outputs, recipients that pass)."""
        gateway = self.gateways.get(received.inbound_gateway or "")
        if received.direction != "inbound" or gateway is None:
            return [], list(received.rcpt_to)
        directory = self.directories.get(gateway.name)
        if directory is None and not uses_web_service_domains(gateway):
            return [], list(received.rcpt_to)
        if not self._started:
            await self._start()
        outputs, rcpts, rejected = await self._domains(received, gateway)
        passed: list[str] = []
        # Ingress's fresh "exists" counts as a cached answer while younger than the cache TTL (one lookup, not two);
        # a replay after that verifies again.
        fresh = now_ms() - received.occurred_at < gateway.smartermail.cache_ttl_s * 1000
        confirmed = set(received.verified_recipients) if fresh else set()
        if directory is None:
            passed = rcpts
            answers: list[Verification] = []
        else:
            answers = await asyncio.gather(*(self._confirmed() if r in confirmed else directory.verify(r)
                                             for r in rcpts))
        mid = received.message_id
        for rcpt, v in zip(rcpts, answers):
            if v.exists is False:
                rejected.append((rcpt, USER_UNKNOWN))
                log.info("reject rcpt=<%s> id=%s reason=user_unknown stage=processor", rcpt, mid)
                outputs.append(self._rejected(received, rcpt, "user_unknown", USER_UNKNOWN))
                continue
            passed.append(rcpt)
            if v.exists is None:
                log.warning("directory unreachable; keeping <%s> id=%s as accepted at ingress", rcpt, mid)
            outputs.append(audit(RecipientVerified(
                message_id=mid, occurred_at=now_ms(), node=self.node, recipient=rcpt, stage="processor",
                method="fail_open" if v.exists is None else verification_method(gateway), cached=v.cached,
                stale=v.stale or v.exists is None, config_version=self.version)))
        if rejected:
            outputs += self._dsn(received, rejected)
        return outputs, passed

    async def _domains(self, received, gateway) -> tuple[list[Output], list[str], list[tuple[str, Reply]]]:
        """(RecipientRejected outputs, recipients whose domain passes, [(refused recipient, reply)])."""
        rcpts = list(received.rcpt_to)
        if not uses_web_service_domains(gateway):
            return [], rcpts, []
        fetched = received.domain_list_fetched_at
        if (received.domain_source == WEB_SERVICE and not received.domain_list_stale and fetched is not None
                and now_ms() - fetched < gateway.smartermail.cache_ttl_s * 1000):
            return [], rcpts, []  # ingress's list is still fresh: it stands
        decisions: dict[str, DomainDecision] = {}
        outputs: list[Output] = []
        kept: list[str] = []
        rejected: list[tuple[str, Reply]] = []
        for rcpt in rcpts:
            domain = domain_of(rcpt)
            if domain not in decisions:
                decisions[domain] = await decide_domain(gateway, domain, self.domain_lists)
            d = decisions[domain]
            if d.accepted is False:
                log.info("reject rcpt=<%s> id=%s reason=domain_not_accepted source=%s stage=processor", rcpt,
                         received.message_id, d.source)
                rejected.append((rcpt, DOMAIN_NOT_ACCEPTED))
                outputs.append(self._rejected(received, rcpt, "domain_not_accepted", DOMAIN_NOT_ACCEPTED, d))
                continue
            if d.accepted is None:
                log.warning("no domain list to be had; keeping <%s> id=%s as accepted at ingress", rcpt,
                            received.message_id)
            kept.append(rcpt)
        return outputs, kept, rejected

    def _rejected(self, received, rcpt: str, reason: str, reply: Reply,
                  domain: DomainDecision | None = None) -> Output:
        return audit(RecipientRejected(
            message_id=received.message_id, occurred_at=now_ms(), node=self.node, recipient=rcpt, stage="processor",
            reason=reason, reply_code=reply.code, enhanced_code=reply.enhanced_code or "",
            client_address=received.client_address, mail_from=received.mail_from, config_version=self.version,
            **domain_fields(domain)))

    @staticmethod
    async def _confirmed() -> Verification:
        return Verification(exists=True, cached=True)

    def _dsn(self, received, rejected: list[tuple[str, Reply]]) -> list[Output]:
        """A failure DSN for the rejected recipients whose NOTIFY asks for one (not NEVER)."""
        headers = header_block(received.body or b"")
        request = DsnRequest.of(received)
        rejected = [(r, rep) for r, rep in rejected if request.wants(r, "FAILURE")]
        if not rejected or not should_send_dsn(received.mail_from, headers):
            return []
        now = now_ms()
        dsn_id = new_message_id(now)
        dsn = build_dsn(reporting_mta=self.cfg.delivery.helo_name, original_message_id=received.message_id,
                        original_mail_from=received.mail_from, failed=rejected,
                        original_headers=headers,
                        arrival_date=datetime.fromtimestamp(received.occurred_at / 1000, timezone.utc),
                        reason=("domain not accepted by the inbound gateway"
                                if all(reply is DOMAIN_NOT_ACCEPTED for _, reply in rejected)
                                else "user unknown in the primary server's directory"),
                        from_local=self.cfg.delivery.bounce_from, request=request, original=received.body)
        record = dsn_received(self.cfg, self.node, dsn_id, received.mail_from, dsn, now)
        return [Output(topics.RECEIVED, dsn_id, record), audit(record)]

    async def aclose(self) -> None:
        if not self._owns:
            return
        for d in self.directories.values():
            await d.aclose()
