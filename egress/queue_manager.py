"""The queue manager: decides when each fetched record is due and what becomes of it, and hands the ones to send
to delivery (Postfix's qmgr beside its smtp agent).

Reads: each record the consumer (egress/consumer.py) fetched, decoded or dead-lettered; the operators' queue
commands as the queue-command follower (egress/queue_command_follower.py) holds them; the retry tier's
`not_before`. Decides, per record: when it is due (`due_in_ms`, `urgent`); then, holding one of its destination's
admission slots (egress/admission.py): dead-lettered to `mail.dlq`, deleted (MessageDiscarded reason
queue_delete), bounced by an operator (MessageBounced and a DSN), parked in `mail.hold` (held, or its destination
suspended: MessageParked the first time), expired while parked (only with `delivery.parked_mail_expires`), or
handed to delivery (egress/delivery.py) for one attempt. Emits: those outputs, an attempt's through the delivered
index's `append` (facts first, then index records). An unexpected error in an attempt defers the message instead
of losing it or stopping every other delivery.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Awaitable, Callable

from aiokafka import TopicPartition

from egress.admission import Admission
from egress.delivered_index import DeliveredIndex
from egress.queue_command_follower import QueueCommandFollower
from mailgate.core import metrics, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail import delivery_metrics
from mailgate.mail import pipeline_replies as replies
from mailgate.mail.headers import header_block
from mailgate.mail.outputs import Output, audit
from mailgate.mail.smtp_reply import Reply
from schemas import DeadLettered, MessageDiscarded, MessageParked, MessageRouted

log = logging.getLogger("mailgate.egress")

HOLD_RESCAN_MS = 30_000
"""How often a paused mail.hold partition is looked at again without a command (suspensions ending by themselves
are also scheduled exactly)."""

Emit = Callable[[list[Output]], Awaitable[None]]


class QueueManager:
    def __init__(self, cfg: Config, commands: QueueCommandFollower, admission: Admission, delivery: Any,
                 emit: Emit) -> None:
        self.cfg = cfg
        self.node = cfg.node_name
        self.commands = commands
        self.admission = admission
        self.delivery = delivery
        """egress/delivery.py's Delivery: one attempt, and the outcome policy (retry tiers, DSNs)."""
        self._emit = emit
        self._refresh_ms = cfg.kafka.mail_retention_s * 1000 // 2

    # --- when a record is due ---------------------------------------------------------------------------------

    def due_in_ms(self, tp: TopicPartition, rec, routed, now: int) -> int:
        """How long until this record may be attempted (<= 0: now). A mail.hold record is looked at again after
        each change (and before retention could remove it); others wait for their not_before."""
        if tp.topic == topics.HOLD:
            if rec.timestamp < self.commands.changed_at or rec.timestamp < now - self._refresh_ms:
                return 0
            return HOLD_RESCAN_MS
        return getattr(routed, "not_before", 0) - now

    def urgent(self, routed) -> bool:
        """A command makes this waiting record due now (flush, delete, bounce), or it is parked mail that is to
        expire (`delivery.parked_mail_expires`) and has."""
        if type(routed).__name__ != "MessageRouted":
            return False
        return (self.commands.state.urgent(routed)
                or (self.cfg.delivery.parked_mail_expires and routed.expires_at <= now_ms()))

    # --- what becomes of it -----------------------------------------------------------------------------------

    async def handle(self, topic: str, routed: MessageRouted | None, dead: DeadLettered | None) -> None:
        """One due record: dead-lettered, or decided inside an admission slot of its destination. The slot is given
        back once the SMTP session is over, before the outcome is appended, so the next message's session starts
        while this one's outcome waits for Kafka."""
        if dead is not None:
            metrics.EGRESS_DEAD_LETTERED.inc()
            await self._emit([Output(topics.DLQ, "", dead)])
            return
        assert routed is not None, "a due record is either dead-lettered or routed"
        async with self.admission.admit(routed.route.destination or "") as give_back_slot:
            routed, controlled = await self.intercept(topic, routed, self.delivery.outcome)
            if controlled is not None:  # held, deleted, bounced, or its destination suspended
                await self._emit(controlled)
                return
            try:
                outputs = await self.delivery.deliver(routed)
            except Exception:  # a bug here must neither lose the message nor stop every other delivery: defer it
                log.exception("unexpected error delivering id=%s; deferring it", routed.message_id,
                              extra={"message_id": routed.message_id})
                failed = [(r, replies.INTERNAL_DELIVERY_ERROR) for r in routed.recipients]
                outputs = self.delivery.outcome.outcome(routed, failed, gateway="", host="",
                                                        attempt=routed.attempt + 1, now=now_ms(),
                                                        error="internal delivery error (see the egress log)")
            give_back_slot()
            await DeliveredIndex.append(self._emit, outputs)
            delivery_metrics.observe_egress(outputs)

    async def intercept(self, topic: str, routed, outcome) -> tuple[Any, list[Output] | None]:
        """Before an attempt: (the record to attempt, None), or (it, the outputs that replace the attempt)."""
        now = now_ms()
        mid = routed.message_id
        state = self.commands.state
        order = state.order(mid)
        if order is not None and order.command == "delete":
            log.info("deleted id=%s by %s", mid, order.operator, extra={"message_id": mid})
            return routed, [audit(MessageDiscarded(
                message_id=mid, occurred_at=now, node=self.node, reason="queue_delete",
                headers=header_block(routed.body or b"").decode("utf-8", "replace"), operator=order.operator))]
        if order is not None and order.command == "bounce":
            log.info("bounced id=%s by %s", mid, order.operator, extra={"message_id": mid})
            return routed, outcome.operator_bounce(routed, order.operator, order.reason, now)
        if order is not None or state.suspension(routed, now) is not None:
            if self.cfg.delivery.parked_mail_expires and now >= routed.expires_at:
                why = "queue lifetime exceeded while parked"
                lifetime = [(r, Reply(451, "4.4.7", why)) for r in routed.recipients]
                return routed, outcome.outcome(routed, lifetime, gateway="", host="", attempt=routed.attempt,
                                               now=now, error=why)
        if order is not None:  # hold
            return routed, await self._park(topic, routed, "held", order.command_id, routed.route.destination, now)
        s = state.suspension(routed, now)
        if s is not None:
            return routed, await self._park(topic, routed, "destination_suspended", s.command_id,
                                            f"{s.kind}/{s.name}", now)
        if topic == topics.HOLD and not self.cfg.delivery.parked_mail_expires:
            # released or resumed: the time parked does not count against its lifetime
            routed = dataclasses.replace(routed, expires_at=routed.expires_at + max(0, now - routed.occurred_at))
        return routed, None

    async def _park(self, topic: str, routed, cause: str, command_id: str, destination: str, now: int) -> list:
        first = topic != topics.HOLD
        parked = dataclasses.replace(routed, occurred_at=now, node=self.node) if first else routed
        generation = self.commands.generation
        await self._emit([Output(topics.HOLD, routed.route.destination or "unrouted", parked)])
        if self.commands.generation != generation:
            self.commands.changed()  # a command came while it was written: this record must be looked at again
        if not first:
            return []
        log.info("parked id=%s: %s", routed.message_id, cause, extra={"message_id": routed.message_id})
        return [audit(MessageParked(message_id=routed.message_id, occurred_at=now, node=self.node,
                                    recipients=list(routed.recipients), cause=cause, command_id=command_id,
                                    destination=destination))]
