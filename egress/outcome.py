"""Turns one delivery attempt's per-recipient replies into the message's next facts.

Reads: the MessageRouted that was attempted, the replies (or the session error), the clock and the retry schedule.
Emits: Outputs — MessageDelivered, DeliveryDeferred plus the record for its retry tier, MessageBounced or
MessageExpired plus a DSN (as a new MessageReceived from the null sender, which flows through the pipeline like any
other mail), and the sender's DSN request (RFC 3461) honoured: no failure notice for NOTIFY=NEVER (or NOTIFY without
FAILURE); a "relayed" success notice for NOTIFY=SUCCESS once a next hop that does not offer DSN answered 250 (one
that offers DSN was given the request and reports itself, RFC 3461 5.2.2); ENVID and ORCPT in every notice. The
delivered index's records are the index's (egress/delivered_index.py `settle`). Also the two failover decisions
of an attempt that failed as a whole (`next_target`, `failure_replies`). Pure: no I/O here.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from mailgate.mail.dsn import build_dsn, dsn_received, should_send_dsn
from mailgate.mail.dsn_params import DsnRequest
from mailgate.mail.headers import header_block
from egress.errors import DeliveryError
from mailgate.mail import pipeline_replies as replies
from mailgate.mail.smtp_reply import Reply
from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import new_message_id
from mailgate.mail.outputs import Output, audit
from schemas import DeliveryDeferred, MessageBounced, MessageDelivered, MessageExpired


def next_target(err: DeliveryError) -> bool:
    """Whether to try the route's next target after `err`: only for a transient failure that cannot have
    delivered the message (a definite refusal bounces; "may have been delivered" waits for the retry)."""
    return err.transient and not err.may_have_been_delivered


def failure_replies(err: DeliveryError | None, rcpts: list[str]) -> list[tuple[str, Reply]]:
    """Each recipient's reply after an attempt that failed as a whole (no per-recipient replies): the server's own
    reply when it refused for good, so the message bounces with it; otherwise a transient reply, so it is deferred
    (also for "may have been delivered", whose retry then sees the write-ahead record)."""
    if err is not None and not err.transient:
        reply = getattr(err, "reply", None)
        final = reply if reply is not None and reply.is_permanent() else replies.refused(str(err))
        return [(r, final) for r in rcpts]
    later = replies.no_connection(str(err) if err is not None else "no target tried")
    return [(r, later) for r in rcpts]


class OutcomePolicy:
    def __init__(self, cfg: Config, node: str) -> None:
        self.cfg = cfg
        self.node = node

    def _retry_delay_s(self, tier: int) -> tuple[int, int]:
        schedule = self.cfg.delivery.retry_schedule_s
        tier = min(tier, len(schedule) - 1)
        return tier, schedule[tier]

    def outcome(self, routed, results: list[tuple[str, Reply]], *, gateway: str, host: str, attempt: int,
                now: int, error: str | None = None, next_hop_dsn: bool = False) -> list[Output]:
        """The facts of one attempt's replies. `next_hop_dsn`: the server that answered offered DSN, so it was
        given the sender's request and mailgate sends no success notice of its own."""
        delivered = [(r, rep) for r, rep in results if rep.is_success()]
        permanent = [(r, rep) for r, rep in results if rep.is_permanent()]
        transient = [(r, rep) for r, rep in results if not rep.is_success() and not rep.is_permanent()]
        out: list[Output] = []
        mid = routed.message_id
        if delivered:
            out.append(audit(MessageDelivered(
                message_id=mid, occurred_at=now, node=self.node, recipients=[r for r, _ in delivered],
                gateway=gateway, host=host, reply_text=delivered[0][1].one_line(), attempt=attempt,
                received_at=routed.received_at, forced=routed.force_redeliver)))
            if not next_hop_dsn:
                out += self._relayed(routed, delivered, now)
        if permanent:
            out += self._bounce(routed, permanent, now, expired=False)
        if transient:
            reason = error or transient[0][1].one_line()
            if now >= routed.expires_at:
                out += self._bounce(routed, transient, now, expired=True, reason=reason)
            else:
                out += self._defer(routed, [r for r, _ in transient], reason, attempt, now)
        return out

    def operator_bounce(self, routed, operator: str, reason: str, now: int) -> list[Output]:
        """An operator's `mailgate queue bounce`: MessageBounced and a DSN to the sender saying why."""
        why = f"bounced by {operator}: {reason}"
        failed = [(r, Reply(550, "5.0.0", why)) for r in routed.recipients]
        return self._bounce(routed, failed, now, expired=False, reason=why)

    def _defer(self, routed, rcpts: list[str], reason: str, attempt: int, now: int) -> list[Output]:
        tier, delay_s = self._retry_delay_s(routed.retry_tier + 1)
        next_at = min(now + delay_s * 1000, max(routed.expires_at, now))
        topic = topics.retry_topic(delay_s)
        again = dataclasses.replace(routed, occurred_at=now, node=self.node, recipients=rcpts, attempt=attempt,
                                    retry_tier=tier, not_before=next_at, force_redeliver=False)
        return [audit(DeliveryDeferred(message_id=routed.message_id, occurred_at=now, node=self.node,
                                       recipients=rcpts, reason=reason, attempt=attempt,
                                       next_attempt_at=next_at, retry_topic=topic)),
                Output(topic, routed.route.destination or "unrouted", again)]

    def _notice(self, routed, listed: list[tuple[str, Reply]], now: int, *, action: str, reason: str,
                expired: bool = False) -> tuple[str | None, list[Output]]:
        """A DSN about `listed` to the sender (the recipients whose NOTIFY asks for this kind of notice), as a new
        message; (None, []) when there is no one to tell or no one to tell it to."""
        request = DsnRequest.of(routed)
        wanted = [(r, rep) for r, rep in listed if request.wants(r, "FAILURE" if action == "failed" else "SUCCESS")]
        body = routed.body or b""
        if not wanted or not should_send_dsn(routed.mail_from, header_block(body)):
            return None, []
        dsn_id = new_message_id(now)
        dsn = build_dsn(reporting_mta=self.cfg.delivery.helo_name, original_message_id=routed.message_id,
                        original_mail_from=routed.mail_from, failed=wanted, original_headers=header_block(body),
                        arrival_date=datetime.fromtimestamp(routed.received_at / 1000, timezone.utc),
                        reason=reason, expired=expired, action=action, request=request, original=body)
        record = dsn_received(self.cfg, self.node, dsn_id, routed.mail_from, dsn, now)
        return dsn_id, [Output(topics.RECEIVED, dsn_id, record), audit(record)]

    def _relayed(self, routed, delivered: list[tuple[str, Reply]], now: int) -> list[Output]:
        """RFC 3461 5.2.3: NOTIFY=SUCCESS and a next hop without DSN: a "relayed" notice."""
        return self._notice(routed, delivered, now, action="relayed", reason="relayed")[1]

    def _bounce(self, routed, failed: list[tuple[str, Reply]], now: int, *, expired: bool,
                reason: str | None = None) -> list[Output]:
        rcpts = [r for r, _ in failed]
        why = reason or failed[0][1].one_line()
        dsn_id, out = self._notice(routed, failed, now, action="failed", reason=why, expired=expired)
        if expired:
            out.append(audit(MessageExpired(message_id=routed.message_id, occurred_at=now, node=self.node,
                                            recipients=rcpts, last_reason=why, received_at=routed.received_at,
                                            dsn_message_id=dsn_id)))
        else:
            out.append(audit(MessageBounced(message_id=routed.message_id, occurred_at=now, node=self.node,
                                            recipients=rcpts, reason=why, dsn_message_id=dsn_id)))
        return out
