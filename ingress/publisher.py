"""Publishes accepted messages to Kafka and says when they are durable.

Reads: MessageReceived records from the SMTP handler. Writes: the record with its body to `mail.received` and a
copy without the body to `mail.events`, with the idempotent producer (acks=all). `publish` returns only when Kafka
acknowledged both, and raises PublishFailed otherwise — the handler then answers 451 4.3.0, never 250.
The producer is (re)started in the background, so ingress listens even while Kafka is down.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from aiokafka import AIOKafkaProducer

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from schemas import TempfailedMessageStored, encode

log = logging.getLogger("mailgate.ingress.publisher")


class PublishFailed(Exception):
    """Kafka did not acknowledge the record in time; nothing may be promised to the client."""


class Publisher:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.timeout_s = cfg.ingress.publish_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task | None = None
        self._closed = False
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._starting = asyncio.create_task(self._start_loop())

    async def _start_loop(self) -> None:
        delay = 0.5
        while not self._closed:
            p = kafka.producer(self.cfg, f"mailgate-ingress-{self.cfg.node_name}",
                               request_timeout_ms=int(self.timeout_s * 1000 * 0.8), linger_ms=1)
            try:
                await p.start()
            except Exception as err:
                await p.stop()
                log.warning("Kafka unreachable (%s); answering 451 4.3.0 until it is back", type(err).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
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
            await asyncio.gather(f1, f2)

        # The send goes on after a timeout (the producer keeps retrying a record it accepted), so the task is
        # shielded and watched: if Kafka takes the record after the client was told 451, the audit log says so.
        task = asyncio.create_task(send_both())
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except asyncio.TimeoutError:
            self._watch_late(task, record)
            raise PublishFailed("no acknowledgement within publish_timeout_s") from None
        except Exception as err:
            raise PublishFailed(type(err).__name__) from err

    def _watch_late(self, task: asyncio.Task, record) -> None:
        def done(t: asyncio.Task) -> None:
            self._pending.discard(t)
            if t.cancelled() or t.exception() is not None:
                return  # not stored: the 451 was true
            log.warning("id=%s was stored after the client got 451 4.3.0; it will be delivered, and a retry by "
                        "the client would be a second copy", record.message_id)
            self.note(TempfailedMessageStored(
                message_id=record.message_id, occurred_at=now_ms(), node=self.cfg.node_name,
                client_address=record.client_address, mail_from=record.mail_from,
                rcpt_to=list(record.rcpt_to), body_sha256=record.body_sha256))

        self._pending.add(task)
        task.add_done_callback(done)

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

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=self.timeout_s)
        if self._producer is not None:
            await self._producer.stop()
