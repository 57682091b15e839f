"""The egress process: consumes routed mail, delivers it over SMTP, appends the outcome, then commits.

Reads: `mail.outbound`, every `mail.retry.<delay>s` tier and `mail.hold` (consumer group `mailgate-egress`; replicas
share the partitions), the delivered index and queue control (egress/queue_control.py). Writes: DeliveryAttempted
and the outcome's facts to `mail.events`, retry records to their tier, DSNs to `mail.received`, index records to
`mail.delivered`, undecodable records to `mail.dlq`. Every record is handled in its own task as soon as it is fetched
(up to `delivery.max_records_in_flight`; sessions per destination up to `concurrency_per_destination`), while its
partition keeps fetching; an offset is committed only after every record before it was delivered or handed on and
Kafka acknowledged what was written (egress/commit_order.py). A record not yet due pauses its partition until it
is, so a slow or unreachable destination holds up only the records in flight to it.
Serves the stage's metrics endpoint (`/readyz` answers 200 while consuming), and samples its consumer lag.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import ConsumerRebalanceListener, TopicPartition

from egress.commit_order import Lane
from egress.delivered_index import DeliveredIndex
from egress.dkim_signing import DkimSigner
from egress.errors import DeliveryError
from egress.health import GatewayHealth
from egress.outcome import SENDING_MARK, OutcomePolicy, delivered_key, failure_replies, next_target
from egress.pool import SessionPool
from egress.queue_control import QueueControl, replica_id
from mailgate.mail import pipeline_replies as replies
from egress.targets import TargetResolver
from mailgate.core import kafka, metrics, topics
from mailgate.core.config import Config
from mailgate.core.deadletter import decode_or_dead_letter
from mailgate.core.ids import now_ms
from mailgate.core.live_config import LiveConfig
from mailgate.core.runtime import run_until_stopped
from mailgate.mail.outputs import Output, audit
from schemas import (DeadLettered, DeliveryAttempted, DuplicateSuppressed, MessageDelivered, MessageRouted,
                     RecipientResult, SmtpReply, encode)

log = logging.getLogger("mailgate.egress")



RECORD_SIZE_HINT = 1024 * 1024
"""The record size assumed before any was seen: a first fetch takes few records, then it follows their sizes."""


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, egress: "Egress") -> None:
        self.egress = egress

    async def on_partitions_revoked(self, revoked) -> None:
        await self.egress._drain(revoked, timeout_s=300)

    async def on_partitions_assigned(self, assigned) -> None:
        self.egress.needs_catch_up = True


class Egress:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.node = cfg.node_name
        self.health = GatewayHealth()
        self.targets = TargetResolver(cfg, self.health)
        self.pool = SessionPool(cfg.delivery)
        self.dkim = DkimSigner(cfg.dkim_signing)
        self.dkim_cfg = cfg.dkim_signing
        self.outcome = OutcomePolicy(cfg, self.node)
        self.index = DeliveredIndex(cfg)
        self.needs_catch_up = True
        self.in_topics = [topics.OUTBOUND] + [topics.retry_topic(d) for d in sorted(set(cfg.delivery.retry_schedule_s))]
        self.in_topics.append(topics.HOLD)  # mail set aside by queue control (egress/queue_control.py)
        self.control = QueueControl(cfg, self._emit)
        # Fetch sizes are soft limits since KIP-74 (a record larger than them still comes, alone): small ones keep
        # the records fetched ahead of delivery, and so egress's memory, small with large messages.
        self.consumer = kafka.consumer(cfg, replica_id(cfg), "mailgate-egress", max_poll_interval_ms=600_000,
                                       max_partition_fetch_bytes=1024 * 1024, fetch_max_bytes=8 * 1024 * 1024)
        self.producer = kafka.producer(cfg, f"mailgate-egress-{self.node}")
        self._in_flight_state()
        self.consuming = False
        """Subscribed and fetching (what /readyz reports)."""

    def _in_flight_state(self) -> None:
        self._resume: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._lanes: dict[TopicPartition, Lane] = {}
        """Per assigned partition, its records in flight and what may be committed (egress/commit_order.py)."""
        self._lane_tasks: dict[TopicPartition, set[asyncio.Task]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._done: list[asyncio.Task] = []  # finished, not yet looked at by _raise_failed
        self._finished = asyncio.Event()  # set when a record's task finishes (a slot is free)
        self._by_message: dict[str, asyncio.Task] = {}
        self._bytes = 0  # of the records in flight
        self._size_hint = float(RECORD_SIZE_HINT)
        """A decaying maximum of the sizes of recent records (see _records_to_take)."""

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

    async def run(self, stop: asyncio.Event) -> None:
        await self.producer.start()
        live = LiveConfig(self.cfg, "egress")
        self.reconfigure(await live.start())
        live.on_change(self.reconfigure)
        await self.index.start()
        await self.control.start()
        self.control.on_change(self._wake)
        self.consumer.subscribe(self.in_topics, listener=_Rebalance(self))
        await self.consumer.start()
        log.info("egress consuming %s", ", ".join(self.in_topics))
        self.consuming = True
        lag = asyncio.create_task(metrics.sample_lag(self.consumer))
        limit = self.cfg.delivery.max_records_in_flight
        try:
            while not stop.is_set():
                self._raise_failed()
                room = limit - len(self._tasks)
                if self._tasks and (room <= 0 or self._bytes >= self.cfg.delivery.max_bytes_in_flight):
                    # as many records (or bytes) in flight as allowed: let some finish before taking more
                    await self._one_finished(timeout_s=0.1)
                    await self._commit_finished(every_s=self.cfg.delivery.commit_interval_s)
                    continue
                batch = await self.consumer.getmany(timeout_ms=50 if self._tasks else 300,
                                                    max_records=self._records_to_take(room))
                if batch and self.needs_catch_up:
                    await self.index.catch_up()
                    self.needs_catch_up = False
                assigned = self.consumer.assignment()
                for tp, recs in batch.items():
                    if tp not in assigned:
                        # Revoked while we awaited (a rebalance during the catch-up): the new owner reads these
                        # records from the committed offset. Delivering them here too would send them twice.
                        continue
                    self._dispatch(tp, recs)
                await self._commit_finished(every_s=self.cfg.delivery.commit_interval_s)
        finally:
            self.consuming = False
            lag.cancel()
            await asyncio.gather(lag, return_exceptions=True)
            await self._drain(list(self._lanes), timeout_s=30)
            for h in self._resume.values():
                h.cancel()
            await self.consumer.stop()
            await self.pool.close()
            await self.index.close()
            await self.control.close()
            await live.close()
            await self.producer.stop()

    def _records_to_take(self, room: int) -> int:
        """How many records the next fetch may return: the free room, and no more than fit in the bytes still free
        at the size of recent records. The bytes bound is checked before a fetch, but one fetch can return many
        records: well-compressed large messages (a 1 MB body that compresses to a few KB) would otherwise come
        by the hundred and be decompressed together. At least one record, however large."""
        free = self.cfg.delivery.max_bytes_in_flight - self._bytes
        return max(1, min(room, int(free // self._size_hint)))

    def _saw(self, size: int) -> None:
        """A record of `size` bytes was taken: the hint follows a larger one at once, a smaller one slowly."""
        self._size_hint = max(float(size), self._size_hint * 0.98, 1024.0)

    def _raise_failed(self) -> None:
        """An unexpected error in a record's task stops egress: the record is read again from the committed offset."""
        while self._done:
            task = self._done.pop()
            self._tasks.discard(task)
            if not task.cancelled():
                task.result()

    async def _one_finished(self, timeout_s: float) -> None:
        """Wait until a record's task finishes, or `timeout_s`. (asyncio.wait on every task in flight would add
        and remove a callback on each of them, hundreds, every time one finishes.)"""
        self._finished.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()

    async def _commit_finished(self, every_s: float = 0) -> None:
        """Commit, per partition, the offset before which every record is done (egress/commit_order.py); not
        again within `every_s` of the last commit (a commit is a broker round trip)."""
        self._raise_failed()
        if time.monotonic() - self._committed_at < every_s:
            return
        self._committed_at = time.monotonic()
        commits = {}
        for tp, lane in self._lanes.items():
            point = lane.commit_point()
            if point is not None and point != self._committed.get(tp):
                commits[tp] = point
        if commits:
            await self.consumer.commit(commits)
            for tp, point in commits.items():
                self._committed[tp] = point
                self.control.forget_before(tp, point)

    async def _drain(self, partitions, timeout_s: float) -> None:
        """Let the records in flight of `partitions` finish (revoked, or shutting down), commit them, forget them."""
        partitions = [tp for tp in partitions if tp in self._lanes]
        tasks = [t for tp in partitions for t in self._lane_tasks.get(tp, ())]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)
        await self._commit_finished()
        for tp in partitions:
            self._lanes.pop(tp, None)
            self._lane_tasks.pop(tp, None)
            self._committed.pop(tp, None)
            handle = self._resume.pop(tp, None)
            if handle is not None:
                handle.cancel()

    def _dispatch(self, tp: TopicPartition, records) -> None:
        """Start the due records of one partition's batch, each as its own task (the partition keeps fetching);
        at the first record not due, seek back to it and pause the partition until it is."""
        lane = self._lanes.setdefault(tp, Lane())
        lane.reading_from(records[0].offset)
        if lane.wait_at is not None:
            return  # records fetched before the seek back to the waiting record: read again later
        now = now_ms()
        for rec in records:
            if self.control.taken_ahead(tp, rec.offset):
                lane.add(rec.offset, done=True)
                continue
            routed, dead = decode_or_dead_letter(rec, MessageRouted, self.node)
            if dead is not None:
                if lane.wait_at is None:
                    self._start(tp, lane, rec, None, dead)
                continue
            if lane.wait_at is None:
                delay_ms = self.control.due_in_ms(tp, rec, routed, now)
                if delay_ms <= 0 or self.control.urgent(routed):
                    self._start(tp, lane, rec, routed, None)
                    continue
                lane.wait(rec.offset)
                self.consumer.seek(tp, rec.offset)
                self.consumer.pause(tp)
                self._resume[tp] = asyncio.get_running_loop().call_later(delay_ms / 1000, self._unpause, tp)
            elif self.control.urgent(routed):  # flushed, deleted or bounced behind a record not yet due
                self.control.take_ahead(tp, rec.offset)
                self._start(tp, lane, rec, routed, None)

    def _start(self, tp: TopicPartition, lane: Lane, rec, routed, dead) -> None:
        """Handle one record in its own task. Records of one message (a copy the processor wrote again after a
        crash) go one after the other, so the second sees the first's delivery in the index."""
        lane.add(rec.offset)
        size = len(rec.value or b"")
        self._bytes += size
        self._saw(size)
        key = routed.message_id if routed is not None else None
        before = self._by_message.get(key) if key is not None else None

        async def handle() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            async with self.control.admit(routed) as give_back_slot:  # decided when it may go, waited for by commands
                await self._one(tp, rec, routed, dead, give_back_slot)
            lane.finish(rec.offset)

        def release(t: asyncio.Task) -> None:
            self._bytes -= size
            self._done.append(t)
            self._finished.set()

        task = asyncio.create_task(handle())
        task.add_done_callback(release)
        self._tasks.add(task)
        self._lane_tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(self._lane_tasks[tp].discard)
        if key is not None:
            self._by_message[key] = task

            def forget(t: asyncio.Task) -> None:
                if self._by_message.get(key) is t:
                    del self._by_message[key]
            task.add_done_callback(forget)

    async def _settle(self) -> None:
        """Wait until every record in flight is handled (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
            self._raise_failed()

    def _wake(self) -> None:
        """A queue command arrived: read every waiting partition again (flushed, deleted, released mail)."""
        for tp in list(self._resume):
            self._resume.pop(tp).cancel()
            if tp in self.consumer.assignment():
                self.consumer.resume(tp)

    def _unpause(self, tp: TopicPartition) -> None:
        self._resume.pop(tp, None)
        if tp in self.consumer.assignment():
            self.consumer.resume(tp)

    async def _one(self, tp: TopicPartition, rec, routed, dead: DeadLettered | None,
                   give_back_slot: Callable[[], None] = lambda: None) -> None:
        """One record: dead-lettered, intercepted by queue control, or delivered. The destination's slot is given
        back once the SMTP session is over, before the outcome is appended, so the next message's session starts
        while this one's outcome waits for Kafka."""
        if dead is not None:
            metrics.EGRESS_DEAD_LETTERED.inc()
            await self._emit([Output(topics.DLQ, "", dead)])
            return
        routed, controlled = await self.control.intercept(tp.topic, routed, self.outcome)
        if controlled is not None:  # held, deleted, bounced, or its destination suspended
            await self._emit(controlled)
            return
        try:
            outputs = await self.deliver(routed)
        except Exception:  # a bug here must neither lose the message nor stop every other delivery: defer it
            log.exception("unexpected error delivering id=%s; deferring it", routed.message_id,
                          extra={"message_id": routed.message_id})
            failed = [(r, replies.INTERNAL_DELIVERY_ERROR) for r in routed.recipients]
            outputs = self.outcome.outcome(routed, failed, gateway="", host="", attempt=routed.attempt + 1,
                                           now=now_ms(), error="internal delivery error (see the egress log)")
        give_back_slot()
        await self._emit_outcome(outputs)
        metrics.observe_egress(outputs)

    async def _emit_outcome(self, outputs: list[Output]) -> None:
        """An attempt's outcome: its facts (events, retry records, DSNs) first, then its records in mail.delivered,
        so the index says "delivered" only once the MessageDelivered recording it is in Kafka. Appended together,
        the two can go in separate produce requests: a replica killed between them left a delivery the index knew
        and the audit log did not, and the survivor's DuplicateSuppressed pointed at no recorded delivery. Killed
        between the two appends now, the write-ahead mark is still "sending": the survivor attempts again and its
        DeliveryAttempted says the server may get the message twice."""
        facts = [o for o in outputs if o.topic != topics.DELIVERED]
        index = [o for o in outputs if o.topic == topics.DELIVERED]
        if facts:
            await self._emit(facts)
        if index:
            await self._emit(index)

    async def deliver(self, routed) -> list[Output]:
        """One attempt for one routed message: the Outputs to append."""
        out: list[Output] = []
        mid = routed.message_id
        todo = routed.recipients
        if not routed.force_redeliver:
            todo = [r for r in routed.recipients if delivered_key(mid, r) not in self.index]
            done = [r for r in routed.recipients if r not in todo]
            if done:
                log.info("duplicate suppressed id=%s rcpts=%s", mid, ",".join(done), extra={"message_id": mid})
                out.append(audit(DuplicateSuppressed(message_id=mid, occurred_at=now_ms(), node=self.node,
                                                     recipients=done, reason="already delivered")))
            if not todo:
                return out
        keys = {r: delivered_key(mid, r) for r in todo}
        unknown = [r for r in todo if self.index.was_sending(keys[r])]
        if unknown:
            log.warning("id=%s rcpts=%s: an earlier attempt died before recording its outcome; the server may "
                        "get them twice", mid, ",".join(unknown), extra={"message_id": mid})
        # Write-ahead: what is being sent is on record before DATA, so a crash mid-delivery leaves a trace. It is
        # appended while the session starts (MAIL, RCPT); SmtpSession.send sends DATA only once Kafka acknowledged it.
        marks = [Output(topics.DELIVERED, keys[r], SENDING_MARK) for r in todo]
        write_ahead = asyncio.ensure_future(self._emit(marks))
        lost: list[str] = []  # the connection dropped after DATA: the server may have these; keep their mark
        try:
            out += await self._attempt(routed, todo, unknown, lost, write_ahead)
        finally:
            await asyncio.gather(write_ahead, return_exceptions=True)
        write_ahead.result()  # a write-ahead Kafka refused fails the attempt (deferred by _one), even with no DATA
        delivered = {r for o in out if isinstance(o.record, MessageDelivered) for r in o.record.recipients}
        return out + [Output(topics.DELIVERED, keys[r], None) for r in todo if r not in delivered and r not in lost]

    async def _attempt(self, routed, todo: list[str], unknown: list[str], lost: list[str],
                       before_data: asyncio.Future) -> list[Output]:
        """Try the route's targets in order for `todo`; the attempt events and the outcome. Recipients whose
        outcome is unknown (connection lost after DATA) are appended to `lost`. No DATA before `before_data`."""
        out: list[Output] = []
        mid = routed.message_id
        attempt = routed.attempt + 1
        now = now_ms()
        if now >= routed.expires_at:
            expired = [(r, replies.QUEUE_LIFETIME_EXCEEDED) for r in todo]
            return self.outcome.outcome(routed, expired, gateway="", host="", attempt=routed.attempt,
                                              now=now, error="queue lifetime exceeded")
        targets = self.targets.targets(routed.route)
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
                out.append(self._attempted(routed, attempt, target, todo, [], str(err), started, None, unknown))
                log.info("attempt id=%s gateway=%s host=%s failed: %s", mid, target.gateway, target.label, err,
                         extra={"message_id": mid})
                if err.may_have_been_delivered:
                    lost.extend(todo)  # keep their write-ahead mark: the retry says the server may have them
                if next_target(err):
                    continue
                break  # a definite refusal bounces; a message the server may have waits for the retry
            if any(rep.is_transient() for _, rep in results):
                self.health.record_failure(key)
            else:
                self.health.record_success(key)
            out.append(self._attempted(routed, attempt, target, todo, results, None, started, session, unknown))
            for r, rep in results:
                if rep.is_success():
                    self.index.add(delivered_key(mid, r))
            log.info("attempt id=%s gateway=%s host=%s results=%s", mid, target.gateway, target.label,
                     ";".join(f"{r}={rep.code}" for r, rep in results), extra={"message_id": mid})
            return out + self.outcome.outcome(routed, results, gateway=target.gateway, host=target.label,
                                              attempt=attempt, now=now_ms())
        return out + self.outcome.outcome(routed, failure_replies(last, todo), gateway="", host="", attempt=attempt,
                                          now=now_ms(), error=str(last) if last is not None else "no target tried")

    async def _send(self, target, routed, rcpts, before_data: asyncio.Future):
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
                                                 crlf_only=crlf_only)
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
            error=error, duration_ms=int((time.monotonic() - started) * 1000), outcome_unknown_recipients=unknown))

    async def _emit(self, outputs: list[Output]) -> None:
        """Append every output and wait until Kafka acknowledged all of them."""
        futures = []
        for o in outputs:
            value = o.record if o.record is None or isinstance(o.record, bytes) else encode(o.record)
            futures.append(await self.producer.send(o.topic, value, key=o.key.encode() if o.key else None,
                                                    headers=list(o.headers) or None))
        await asyncio.gather(*futures)


def run(cfg: Config) -> None:
    async def main(stop: asyncio.Event) -> None:
        egress = Egress(cfg)
        endpoint = metrics.MetricsServer("egress", cfg.metrics, ready=lambda: egress.consuming)
        await endpoint.start()
        try:
            await kafka.ensure_topics(cfg)
            await egress.run(stop)
        finally:
            await endpoint.close()

    run_until_stopped(main)
