"""The one decode-or-dead-letter path of every stage consumer: a record either holds the event the topic promises,
or it becomes a `DeadLettered` for `mail.dlq` with the reason, the original key and bytes, and its place in the log.

Reads: one Kafka record (aiokafka's ConsumerRecord or faust's message: `topic`, `partition`, `offset`, `key`,
`value`). Emits: the decoded event, or the DeadLettered to append (and an error log line). The caller writes the
DeadLettered with its own producer and counts it in its own metric.
"""
from __future__ import annotations

import logging
from typing import Any

from mailgate.core.ids import now_ms
from schemas import DeadLettered, UndecodableRecord, decode

log = logging.getLogger("mailgate.dlq")


def dead_letter(record, reason: str, node: str) -> DeadLettered:
    """The DLQ record for `record`, which could not be decoded or processed because of `reason`."""
    log.error("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
    return DeadLettered(occurred_at=now_ms(), node=node, source_topic=record.topic, partition=record.partition,
                        offset=record.offset, reason=reason, key=record.key, value=record.value)


def decode_or_dead_letter(record, expected: type, node: str) -> tuple[Any, DeadLettered | None]:
    """(event, None) when `record` holds an `expected` event; (None, DeadLettered) otherwise."""
    try:
        event = decode(record.value)
    except UndecodableRecord as err:
        return None, dead_letter(record, str(err), node)
    if not isinstance(event, expected):
        return None, dead_letter(record, f"unexpected {type(event).__name__} on {record.topic}", node)
    return event, None


__all__ = ["dead_letter", "decode_or_dead_letter"]
