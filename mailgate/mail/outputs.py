"""Records to append, each with its topic, key and Kafka headers (what a stage's policy returns), and the one way
they become Kafka records.

Reads: `Output`s. Emits: the key, value and headers Kafka stores for each (`kafka_fields`: an event encoded by the
codec, bytes as they are, None as a tombstone; an empty key as no key), handed to an aiokafka producer by `send`,
`append` and `append_once` (faust's topics take the same fields).
"""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

from aiokafka import AIOKafkaProducer

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from schemas import encode


@dataclass(frozen=True)
class Output:
    topic: str
    key: str
    record: Any
    """The event, bytes, or None for a tombstone."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka record headers (mail.control's conditional records say what they supersede)."""

    def kafka_fields(self) -> dict[str, Any]:
        """`key`, `value` and `headers` as aiokafka's `send` and faust's `Topic.send` take them."""
        value = self.record if self.record is None or isinstance(self.record, bytes) else encode(self.record)
        return {"key": self.key.encode() if self.key else None, "value": value,
                "headers": list(self.headers) or None}


def audit(record: Any) -> Output:
    """The record's copy for the audit log (bodies removed), keyed by message id."""
    fields = {f.name for f in dataclasses.fields(record)}
    copy = record
    if "body" in fields:
        copy = dataclasses.replace(copy, body=None)
    if "routed" in fields:
        copy = dataclasses.replace(copy, routed=None)
    return Output(topics.EVENTS, record.message_id, copy)


async def send(producer: AIOKafkaProducer, output: Output) -> asyncio.Future:
    """Hand `output` to `producer`; the future is done when Kafka acknowledged it."""
    return await producer.send(output.topic, **output.kafka_fields())


async def append(producer: AIOKafkaProducer, outputs: Iterable[Output]) -> None:
    """Hand every output to `producer` in order and wait until Kafka acknowledged all of them."""
    futures = [await send(producer, o) for o in outputs]
    await asyncio.gather(*futures)


async def append_once(cfg: Config, client_id: str, outputs: Iterable[Output]) -> None:
    """`append` with a producer of its own, started for these outputs and stopped after (an operator command)."""
    producer = kafka.producer(cfg, client_id)
    await producer.start()
    try:
        await append(producer, outputs)
    finally:
        await producer.stop()
