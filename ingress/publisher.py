"""Publishes accepted messages to Kafka and says when they are durable.

Reads: MessageReceived records from the SMTP handler. Writes: the record with its body to `mail.received` and a
copy without the body to `mail.events`, with the idempotent producer (acks=all). `publish` returns only when Kafka
acknowledged both, and raises PublishFailed otherwise — the handler then answers 451 4.3.0, never 250.
The producer is (re)started in the background, so ingress listens even while Kafka is down.

The window between the two writes: if `mail.received` acknowledged the message but the audit copy failed, the audit
write is retried until `publish_timeout_s`; if it lands the client gets 250. If not, the client gets 451 — but the
message is stored and will be delivered — so the audit copy and a `TempfailedMessageStored` (a second copy the
client may send) are retried in the background until Kafka takes them. Why not one Kafka transaction for both
writes: docs/performance.md ("What a Kafka transaction would cost ingress").

Audit events of refusals are appended without the SMTP reply waiting for them: `note` (a refused recipient: tried
once, a failure logged) and `note_until_stored` (a refused connection: retried until Kafka takes it, bounded).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from aiokafka import AIOKafkaProducer

from mailgate.core import kafka, metrics, topics
from mailgate.core.backoff import Backoff
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from schemas import TempfailedMessageStored, encode

log = logging.getLogger("mailgate.ingress.publisher")


AUDIT_RETRY_FIRST_S = 0.2
AUDIT_RETRY_MAX_S = 5.0
MAX_UNSTORED_REFUSALS = 10_000
"""Refused-connection events kept for Kafka at once (`note_until_stored`); more are given up and counted."""


class PublishFailed(Exception):
    """Kafka did not acknowledge the record in time; nothing may be promised to the client."""


class AuditNotStored(Exception):
    """`mail.received` acknowledged the message but `mail.events` did not take its audit copy (cause chained)."""


class Publisher:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.timeout_s = cfg.ingress.publish_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task | None = None
        self._closed = False
        self._pending: set[asyncio.Task] = set()
        self._unstored = 0  # note_until_stored's events not yet acknowledged

    async def start(self) -> None:
        self._starting = asyncio.create_task(self._start_loop())

    async def _start_loop(self) -> None:
        backoff = Backoff(0.5, 5)
        while not self._closed:
            p = kafka.producer(self.cfg, f"mailgate-ingress-{self.cfg.node_name}",
                               request_timeout_ms=int(self.timeout_s * 1000 * 0.8), linger_ms=1)
            try:
                await p.start()
            except Exception as err:
                await p.stop()
                log.warning("Kafka unreachable (%s); answering 451 4.3.0 until it is back", type(err).__name__)
                await backoff.wait()
                continue
            self._producer = p
            log.info("connected to Kafka at %s", ",".join(self.cfg.kafka.bootstrap_servers))
            return

    @property
    def ready(self) -> bool:
        return self._producer is not None

    async def publish(self, record) -> None:
        """Durably store `record` (a MessageReceived); raise PublishFailed if Kafka did not ack in time."""
        p = self._producer
        if p is None:
            raise PublishFailed("not connected to Kafka")
        key = record.message_id.encode()
        audit = dataclasses.replace(record, body=None)

        async def send_both() -> None:
            f1 = await p.send(topics.RECEIVED, encode(record), key=key)
            f2 = await p.send(topics.EVENTS, encode(audit), key=key)
            stored: object
            audited: object
            stored, audited = await asyncio.gather(f1, f2, return_exceptions=True)
            if isinstance(stored, BaseException):
                raise stored
            if isinstance(audited, BaseException):
                raise AuditNotStored(type(audited).__name__) from audited

        # The send goes on after a timeout (the producer keeps retrying a record it accepted), so the task is
        # shielded and watched: if Kafka takes the record after the client was told 451, the audit log says so.
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        task = asyncio.create_task(send_both())
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except asyncio.TimeoutError:
            self._watch_late(task, record)
            raise PublishFailed("no acknowledgement within publish_timeout_s") from None
        except AuditNotStored as err:
            if await self._retry_audit(p, audit, deadline):
                return
            log.warning("id=%s is stored in %s but its audit copy was not (%s) within publish_timeout_s; "
                        "answering 451 4.3.0 and writing the audit copy and TempfailedMessageStored when Kafka "
                        "takes them", record.message_id, topics.RECEIVED, err)
            self._audit_after_451(record, audit)
            raise PublishFailed("audit copy not acknowledged within publish_timeout_s") from err
        except Exception as err:
            raise PublishFailed(type(err).__name__) from err

    async def _retry_audit(self, p: AIOKafkaProducer, audit, deadline: float) -> bool:
        """Re-send the audit copy until it is acknowledged (True) or the client's reply cannot wait (False)."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(AUDIT_RETRY_FIRST_S, AUDIT_RETRY_MAX_S)
        while loop.time() + backoff.delay_s < deadline:
            await backoff.wait()
            try:
                fut = await p.send(topics.EVENTS, encode(audit), key=audit.message_id.encode())
                await asyncio.wait_for(fut, max(deadline - loop.time(), 0.01))
                log.info("id=%s audit copy stored on retry", audit.message_id)
                return True
            except Exception as err:  # retried until the deadline whatever the error
                log.info("id=%s audit copy not stored yet: %s", audit.message_id, type(err).__name__)
        return False

    def _watch_late(self, task: asyncio.Task, record) -> None:
        def done(t: asyncio.Task) -> None:
            self._pending.discard(t)
            if t.cancelled():
                return
            err = t.exception()
            if err is not None and not isinstance(err, AuditNotStored):
                return  # not stored: the 451 was true
            log.warning("id=%s was stored after the client got 451 4.3.0; it will be delivered, and a retry by "
                        "the client would be a second copy", record.message_id)
            audit = dataclasses.replace(record, body=None) if err is not None else None
            self._audit_after_451(record, audit)

        self._pending.add(task)
        task.add_done_callback(done)

    def _audit_after_451(self, record, audit) -> None:
        """In the background, until Kafka takes them: the audit copy (if `audit`), then TempfailedMessageStored."""
        tempfailed = TempfailedMessageStored(
            message_id=record.message_id, occurred_at=now_ms(), node=self.cfg.node_name,
            client_address=record.client_address, mail_from=record.mail_from,
            rcpt_to=list(record.rcpt_to), body_sha256=record.body_sha256)

        async def write_until_stored() -> None:
            for event in ([audit] if audit is not None else []) + [tempfailed]:
                backoff = Backoff(AUDIT_RETRY_FIRST_S, AUDIT_RETRY_MAX_S)
                while True:
                    p = self._producer
                    try:
                        if p is None:
                            raise PublishFailed("not connected to Kafka")
                        await (await p.send(topics.EVENTS, encode(event), key=record.message_id.encode()))
                        break
                    except Exception as err:
                        log.warning("id=%s audit event %s not stored yet (%s); retrying in %.1fs",
                                    record.message_id, type(event).__name__, type(err).__name__, backoff.delay_s)
                    await backoff.wait()
            log.info("id=%s audit record of the 451 stored", record.message_id)

        task = asyncio.create_task(write_until_stored())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def note(self, record) -> None:
        """Append an audit event without waiting (a RCPT reply never waits on the audit log)."""
        p = self._producer
        if p is None:
            log.warning("audit event %s for %s not recorded: Kafka unreachable", type(record).__name__,
                        getattr(record, "message_id", "-"))
            return

        async def send() -> None:
            try:
                await (await p.send(topics.EVENTS, encode(record), key=record.message_id.encode()))
            except Exception as err:
                log.warning("audit event %s for %s not recorded: %s", type(record).__name__, record.message_id,
                            type(err).__name__)

        task = asyncio.create_task(send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def note_until_stored(self, record) -> None:
        """Append an audit event that must not be lost (a refused connection) without the reply waiting for it:
        retried in the background until Kafka takes it — also while Kafka is unreachable — with at most
        `MAX_UNSTORED_REFUSALS` waiting; past that bound (a flood while Kafka is down) one is given up and counted
        (`mailgate_ingress_audit_dropped`), so a flood cannot exhaust memory."""
        if self._unstored >= MAX_UNSTORED_REFUSALS:
            metrics.INGRESS_AUDIT_DROPPED.inc()
            log.warning("audit event %s for %s given up: %d refusals already wait for Kafka",
                        type(record).__name__, record.message_id, self._unstored)
            return
        self._unstored += 1

        async def write_until_stored() -> None:
            backoff = Backoff(AUDIT_RETRY_FIRST_S, AUDIT_RETRY_MAX_S)
            try:
                while not self._closed:
                    p = self._producer
                    try:
                        if p is None:
                            raise PublishFailed("not connected to Kafka")
                        await (await p.send(topics.EVENTS, encode(record), key=record.message_id.encode()))
                        return
                    except Exception as err:
                        log.info("audit event %s for %s not stored yet (%s)", type(record).__name__,
                                 record.message_id, type(err).__name__)
                    await backoff.wait()
            finally:
                self._unstored -= 1

        task = asyncio.create_task(write_until_stored())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._pending:
            _, unfinished = await asyncio.wait(list(self._pending), timeout=self.timeout_s)
            for t in unfinished:
                t.cancel()
            if unfinished:
                log.error("%d audit writes still unacknowledged at shutdown are given up (see warnings above)",
                          len(unfinished))
                await asyncio.gather(*unfinished, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
