"""The aiosmtpd handler: SMTP hooks that ask the policy, and DATA that publishes before it answers 250 (after the
virus scan, for gateways with scan_at_data: ingress/virus_gate.py).

Reads: SMTP commands of one session. Emits: MessageReceived (via the Publisher) for accepted mail and
RecipientRejected audit events for refused recipients. Replies come only from ingress.replies.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime

from aiosmtpd.smtp import MISSING, SMTP, Session

from ingress import access
from ingress.auth import SmtpAuth
from ingress.dnsbl import NOT_LISTED
from ingress.policy import RecipientPolicy
from ingress.publisher import PublishFailed, Publisher
from ingress.replies import Verdict, ehlo_lines
from ingress.recipient_lookup import VERIFIED, RecipientVerifier
from ingress.envelope import GatewayEnvelope
from ingress.virus_gate import scan_at_data
from mailgate.core import metrics
from mailgate.mail.header_fields import header_value
from mailgate.mail.line_endings import has_bare_line_ending, to_crlf
from mailgate.core.config import Config
from mailgate.core.config_events import config_version
from mailgate.core.ids import new_message_id, now_ms
from mailgate.mail.directory import CachedDirectory
from mailgate.mail.directory.domains import WEB_SERVICE, DomainDecision, domain_fields
from mailgate.mail.dsn_params import MailDsn, RcptDsn
from schemas import DsnRecipient, MessageReceived, RecipientRejected

log = logging.getLogger("mailgate.ingress")


def received_header(*, helo: str, client: str, hostname: str, protocol: str, message_id: str,
                    rcpts: list[str], when: datetime) -> bytes:
    """The trace header ingress prepends (RFC 5321 section 4.4), folded, CRLF-terminated."""
    rcpt = f"\r\n\tfor <{rcpts[0]}>" if len(rcpts) == 1 else ""
    helo_clean = re.sub(r"[^\x21-\x7e]", "?", helo)[:255] or "unknown"
    return (f"Received: from {helo_clean} ([{client}])\r\n\tby {hostname} (mailgate) with {protocol}"
            f" id {message_id}{rcpt};\r\n\t{format_datetime(when)}\r\n").encode()


def _sender(envelope: GatewayEnvelope) -> str:
    """The envelope sender as events carry it: '' for the null sender."""
    return "" if envelope.mail_from is None or envelope.mail_from == "<>" else envelope.mail_from


def merge_domain_decisions(before: DomainDecision | None, new: DomainDecision | None) -> DomainDecision | None:
    """One message's domain decision over its accepted recipients (one gateway, so one cached list): web_service if
    any was decided by the server's list, with the oldest list's fetch time; stale if any was."""
    if before is None or new is None:
        return new or before
    if new.source != WEB_SERVICE:
        return before
    if before.source != WEB_SERVICE:
        return new
    fetched = [t for t in (before.fetched_at_ms, new.fetched_at_ms) if t is not None]
    return DomainDecision(True, WEB_SERVICE, min(fetched) if fetched else None, before.stale or new.stale,
                          before.cached and new.cached)


@dataclass(frozen=True)
class Settings:
    """One version of the live configuration, as one mail transaction is judged by it from MAIL FROM to DATA."""
    cfg: Config
    version: str
    policy: RecipientPolicy
    directories: dict[str, CachedDirectory] = field(default_factory=dict)


class IngressHandler:
    def __init__(self, cfg: Config, publisher: Publisher, verifier: RecipientVerifier | None = None,
                 auth: SmtpAuth | None = None) -> None:
        self.publisher = publisher
        self.verifier = verifier
        self.auth = auth
        self.current = self._settings(cfg)

    @property
    def cfg(self) -> Config:
        return self.current.cfg

    def _settings(self, cfg: Config) -> Settings:
        directories = dict(self.verifier.directories) if self.verifier is not None else {}
        lists = dict(self.verifier.domain_lists) if self.verifier is not None else {}
        return Settings(cfg, config_version(cfg), RecipientPolicy(cfg, lists), directories)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: GatewayEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """EHLO: aiosmtpd's keywords with PIPELINING, ENHANCEDSTATUSCODES and DSN, in ingress.replies' order."""
        session.host_name = hostname
        return ehlo_lines(responses)

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: GatewayEnvelope, args: list[str]) -> object:
        """AUTH PLAIN/LOGIN (aiosmtpd checked EHLO and TLS first): ingress.auth decides; none configured: 535."""
        return MISSING if self.auth is None else await self.auth.handle(server, session, args)

    def reconfigure(self, cfg: Config) -> None:
        """A change in mail.config (gateways, verification, relay networks): transactions that start from now on
        are judged by it; one already past MAIL FROM finishes under the version it began with."""
        if self.verifier is not None:
            self.verifier.reconfigure(cfg)
        if self.auth is not None:
            self.auth.reconfigure(cfg)
        self.current = self._settings(cfg)

    @staticmethod
    def settings_of(envelope: GatewayEnvelope, default: Settings) -> Settings:
        return getattr(envelope, "mg_settings", None) or default

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: GatewayEnvelope, address: str,
                          mail_options: list[str]) -> str:
        verdict, why = self.current.policy.sender_verdict(address)
        if verdict is not Verdict.SENDER_OK:
            return verdict.reply(addr=address, why=why)
        login = session.auth_data if session.authenticated else None
        if login and self.auth is not None and not self.auth.credentials.sender_allowed(login, address):
            log.info("reject sender=<%s> user=%r reason=sender_not_owned", address, login)
            return Verdict.SENDER_NOT_OWNED.reply(addr=address, user=login)
        # aiosmtpd takes an empty mail_from for "no MAIL yet": the null sender is kept as "<>" in the session.
        envelope.mail_from = "<>" if address in ("", "<>") else address
        envelope.mail_options.extend(mail_options)
        envelope.mg_id = new_message_id()
        envelope.mg_direction = None
        envelope.mg_gateway = None
        envelope.mg_verified = []
        envelope.mg_domain = None
        envelope.mg_settings = self.current
        dsn = getattr(server, "mg_mail_dsn", None)
        envelope.mg_dsn = dsn if isinstance(dsn, MailDsn) else MailDsn()
        envelope.mg_dsn_rcpts = []
        return Verdict.SENDER_OK.reply()

    def _reject(self, session: Session, envelope: GatewayEnvelope, address: str, verdict: Verdict, reason: str,
                domain: DomainDecision | None = None, *, check: str = "recipient", reply: str | None = None,
                dnsbl_score: int = 0) -> str:
        s = self.settings_of(envelope, self.current)
        client = session.peer[0] if session.peer else "?"
        mid = getattr(envelope, "mg_id", "") or "-"
        metrics.INGRESS_REJECTED_RECIPIENTS.labels(metrics.reason_label(reason)).inc()
        log.info("reject rcpt=<%s> client=%s id=%s reason=%s reply=%d", address, client, mid, reason, verdict.code,
                 extra={"message_id": mid})
        self.publisher.note_until_stored(RecipientRejected(  # a refusal: retried, never waited for
            message_id=getattr(envelope, "mg_id", "") or "-", occurred_at=now_ms(), node=s.cfg.node_name,
            recipient=address.encode("utf-8", "replace").decode(), stage="ingress", reason=reason,
            reply_code=verdict.code, enhanced_code=verdict.enhanced, client_address=client,
            mail_from=_sender(envelope), config_version=s.version, check=check, dnsbl_score=dnsbl_score,
            **domain_fields(domain)))
        return reply if reply is not None else verdict.reply(addr=address, why=reason)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: GatewayEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        s = self.settings_of(envelope, self.current)
        if len(envelope.rcpt_tos) >= s.cfg.ingress.max_recipients:
            return self._reject(session, envelope, address, Verdict.TOO_MANY_RECIPIENTS, "too_many_recipients")
        decision = await s.policy.decide_async(session.peer[0], address, authenticated=bool(session.authenticated))
        if not decision.accepted:
            return self._reject(session, envelope, address, decision.verdict, decision.reason, decision.domain)
        refused = await self._at_the_door(server, session, envelope, address, decision)
        if refused is not None:
            return refused
        gw_name = decision.gateway.name if decision.gateway else None
        if envelope.mg_direction is not None and (envelope.mg_direction, envelope.mg_gateway) != (
                decision.direction, gw_name):
            return self._reject(session, envelope, address, Verdict.MIXED_DIRECTION, "mixed_destinations")
        if self.verifier is not None and decision.gateway is not None:
            verdict, reason = await self.verifier.check(decision.gateway, str(decision.mailbox), envelope.mg_id,
                                                        directories=s.directories, version=s.version)
            if verdict is not Verdict.OK:
                return self._reject(session, envelope, address, verdict, reason, decision.domain)
            if reason == VERIFIED:
                envelope.mg_verified.append(str(decision.mailbox))
        envelope.mg_direction, envelope.mg_gateway = decision.direction, gw_name
        envelope.mg_domain = merge_domain_decisions(envelope.mg_domain, decision.domain)
        envelope.rcpt_tos.append(str(decision.mailbox))
        envelope.rcpt_options.extend(rcpt_options)
        dsn = getattr(server, "mg_rcpt_dsn", None)
        if isinstance(dsn, RcptDsn) and (dsn.notify or dsn.orcpt):
            envelope.mg_dsn_rcpts.append((str(decision.mailbox), dsn))
        return Verdict.OK.reply()

    async def _at_the_door(self, server: SMTP, session: Session, envelope: GatewayEnvelope, address: str,
                           decision) -> str | None:
        """The gateway's allow and block entries (ingress.access), then the door's checks (ingress.door: pre-greet
        enforce, the DNS lists unless an allow entry matched): the refusal's reply, or None."""
        client = session.peer[0]
        rule = access.decide(decision.gateway.access, client, _sender(envelope),
                             session.host_name or "") if decision.gateway is not None else None
        if rule is not None and rule.action == "block":
            verdict = {"client": Verdict.ACCESS_CLIENT, "sender": Verdict.ACCESS_SENDER}.get(rule.kind,
                                                                                            Verdict.ACCESS_HELO)
            reply = verdict.reply(client=client, sender=_sender(envelope), helo=session.host_name or "")
            return self._reject(session, envelope, address, verdict, f"access:{rule.kind}", check="access",
                                reply=reply)
        door = getattr(server, "door_refusal", None)  # a session without the door's checks: none
        refusal = await door(bool(session.authenticated), dnsbl=rule is None) if door is not None else None
        if refusal is None:
            return None
        check, reason, reply, score = refusal
        verdict = Verdict.DNSBL_RCPT if check == "dnsbl" else Verdict.PREGREET_ENFORCE
        return self._reject(session, envelope, address, verdict, reason, check=check, reply=reply,
                            dnsbl_score=score)

    async def handle_exception(self, error: Exception) -> str:
        """A bug in a hook: logged with its traceback here, a plain 451 on the wire (never the exception's name)."""
        log.error("hook failed; replied 451 4.3.0", exc_info=error)
        return Verdict.LOCAL_ERROR.reply()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: GatewayEnvelope) -> str:
        s = self.settings_of(envelope, self.current)
        data: bytes = envelope.original_content or b""
        bare = getattr(envelope, "mg_bare_line_ending", None)  # found by ingress/data_reader.py while reading DATA
        if bare if bare is not None else has_bare_line_ending(data):
            trusted = bool(session.authenticated) or s.policy.may_relay(session.peer[0])
            mode = getattr(server, "bare_lf_trusted", s.cfg.ingress.bare_lf_trusted) if trusted \
                else s.cfg.ingress.bare_lf
            if mode == "reject":
                log.info("reject data id=%s client=%s reason=bare_lf", envelope.mg_id, session.peer[0],
                         extra={"message_id": envelope.mg_id})
                metrics.INGRESS_REJECTED_MESSAGES.labels("bare_lf").inc()
                return Verdict.BARE_LF.reply()
            data = to_crlf(data)
        if len(data) > s.cfg.ingress.max_message_bytes:
            metrics.INGRESS_REJECTED_MESSAGES.labels("too_big").inc()
            return Verdict.MESSAGE_TOO_BIG.reply()
        # original_content keeps dot-stuffing undone and CRLFs; content may be str if decode_data were set.
        mid = envelope.mg_id
        scanned = await scan_at_data(s.cfg, data, message_id=mid, client=session.peer[0],
                                     direction=envelope.mg_direction or "", gateway=envelope.mg_gateway,
                                     login=session.auth_data if session.authenticated else None,
                                     mail_from=_sender(envelope), rcpt_to=envelope.rcpt_tos, version=s.version,
                                     note=self.publisher.note_until_stored)
        if scanned.refusal is not None:
            return scanned.refusal
        when = datetime.now(timezone.utc)
        score = NOT_LISTED
        if not session.authenticated and hasattr(server, "dnsbl_score"):  # recorded and scored; exempt: none
            score = await server.dnsbl_score()
        tls = session.ssl.get("cipher") if session.ssl else None
        # RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both).
        protocol = (("ESMTPS" if tls else "ESMTP") + ("A" if session.authenticated else "")
                    if session.extended_smtp else "SMTP")
        trace = received_header(helo=session.host_name or "", client=session.peer[0], hostname=s.cfg.ingress.hostname,
                                protocol=protocol, message_id=mid, rcpts=envelope.rcpt_tos, when=when)
        body = trace + data
        record = MessageReceived(
            message_id=mid, occurred_at=int(when.timestamp() * 1000), node=s.cfg.node_name,
            direction=envelope.mg_direction or "", inbound_gateway=envelope.mg_gateway,
            client_address=session.peer[0], client_helo=session.host_name or "",
            client_auth=session.auth_data if session.authenticated else None, tls=f"{tls[1]} {tls[0]}" if tls else None,
            mail_from=_sender(envelope), rcpt_to=list(envelope.rcpt_tos), size_bytes=len(body),
            verified_recipients=list(getattr(envelope, "mg_verified", [])),
            header_message_id=header_value(data, "Message-ID"), subject=header_value(data, "Subject"),
            body_sha256=hashlib.sha256(body).hexdigest(), body=body, config_version=s.version,
            body_crlf_only=not has_bare_line_ending(trace), dnsbl_score=score.score,
            dnsbl_listings=list(score.listings),
            dsn_ret=envelope.mg_dsn.ret, dsn_envid=envelope.mg_dsn.envid,
            dsn_recipients=[DsnRecipient(recipient=r, notify=list(d.notify), orcpt=d.orcpt)
                            for r, d in envelope.mg_dsn_rcpts],
            **scanned.received_fields(),  # the verdict of scan_at_data, which the processor reuses when clean
            **domain_fields(getattr(envelope, "mg_domain", None)))  # `data` has none left: refused or repaired above
        began = time.monotonic()
        try:
            await self.publisher.publish(record)
        except PublishFailed as err:
            metrics.INGRESS_QUEUE_UNAVAILABLE.inc()
            log.warning("not queued id=%s client=%s: Kafka did not acknowledge (%s); replied 451 4.3.0",
                        mid, session.peer[0], err, extra={"message_id": mid})
            return Verdict.QUEUE_UNAVAILABLE.reply()
        metrics.INGRESS_PUBLISH_SECONDS.observe(time.monotonic() - began)
        metrics.INGRESS_ACCEPTED.labels(record.direction or "unknown").inc()
        log.info("queued id=%s from=<%s> rcpts=%d size=%d client=%s direction=%s", mid, record.mail_from,
                 len(record.rcpt_to), record.size_bytes, record.client_address, record.direction,
                 extra={"message_id": mid})
        return Verdict.QUEUED.reply(id=mid)
