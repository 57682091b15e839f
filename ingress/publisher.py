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

from mailgate import kafka, topics
from mailgate.config import Config
from schemas import encode

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

        try:
            await asyncio.wait_for(send_both(), self.timeout_s)
        except Exception as err:
            raise PublishFailed(type(err).__name__) from err

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
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
