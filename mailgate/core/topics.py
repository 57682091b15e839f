"""Every Kafka topic mailgate uses, in one place: its name, key, and what a record there means.

Topics are the queue states of a message, as Postfix's incoming / active / deferred / hold queues are directories.
`declared_topics(config)` gives the creation settings (partitions, retention, compaction, max message size);
`mailgate broker start` and every stage create them idempotently from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mailgate.core.config import Config

RECEIVED = "mail.received"
"""A message ingress accepted (250 after DATA): `MessageReceived` with the body. Key: message id."""

OUTBOUND = "mail.outbound"
"""A message routed and ready for delivery: `MessageRouted` with the body. Key: the destination (gateway name),
so one destination's mail shares a partition and an egress replica."""

RETRY_PREFIX = "mail.retry."
"""`mail.retry.<delay>s`: a deferred message waiting for its next attempt: `MessageRouted` with `not_before`.
One topic per delay tier, so records in a tier come due in the order they were written."""

QUARANTINE = "mail.quarantine"
"""Held spam: `MessageQuarantined` with the body, until an operator releases or deletes it. Key: message id."""

EVENTS = "mail.events"
"""The append-only audit log: every fact any stage learns about a message, without bodies. Key: message id."""

DELIVERED = "mail.delivered"
"""Compacted index of delivered (message id, recipient) pairs, read by egress to suppress duplicate deliveries."""

DLQ = "mail.dlq"
"""Records that could not be decoded or processed: `DeadLettered` with the original bytes and the reason."""

CONFIG = "mail.config"
"""Compacted configuration: the latest `GatewayConfigured` / `GatewayRemoved` per gateway name, and
`CachePurgeRequested` (key `cache-purge`), which every ingress and processor follows from its end."""


CONTROL = "mail.control"
"""Compacted queue control, followed from its beginning by every egress replica (no consumer group): the latest
`QueueCommandIssued` per message (key `message/<id>`: hold, release, delete, bounce, flush), the latest
`DestinationSuspended` / `DestinationResumed` per destination (key `destination/<kind>/<name>`), and the latest
destination flush (key `flush/<kind>/<name>`). Its own topic, not mail.config: one record per commanded message,
read only by egress, and replayed whole at start."""

HOLD = "mail.hold"
"""Mail set aside by egress instead of attempted (Postfix's hold queue): `MessageRouted` with the body, of a held
message or a suspended destination. Egress passes over it again after every queue control change. Key: destination."""


def retry_topic(delay_s: int) -> str:
    return f"{RETRY_PREFIX}{delay_s}s"


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def declared_topics(cfg: Config) -> list[TopicSpec]:
    """The topics for this configuration, with settings matched to the maximum message size."""
    k = cfg.kafka
    # A record carries the body plus envelope and headers we add; leave room for both.
    max_record = str(cfg.ingress.max_message_bytes + 1024 * 1024)
    common = {"min.insync.replicas": str(k.min_insync_replicas)}
    mail = {**common, "max.message.bytes": max_record, "retention.ms": str(k.mail_retention_s * 1000)}
    specs = [
        TopicSpec(RECEIVED, k.partitions, mail),
        TopicSpec(OUTBOUND, k.partitions, mail),
        TopicSpec(QUARANTINE, k.partitions, {**mail, "retention.ms": str(k.events_retention_s * 1000)}),
        TopicSpec(EVENTS, k.partitions, {**common, "retention.ms": str(k.events_retention_s * 1000)}),
        TopicSpec(DELIVERED, k.partitions, {**common, "cleanup.policy": "compact"}),
        TopicSpec(DLQ, 1, {**mail, "retention.ms": str(k.events_retention_s * 1000)}),
        # Compaction keeps every change for the events' retention (config history), then the latest per gateway.
        TopicSpec(CONFIG, 1, {**common, "cleanup.policy": "compact",
                              "min.compaction.lag.ms": str(k.events_retention_s * 1000)}),
    ]
    specs += [TopicSpec(CONTROL, 1, {**common, "cleanup.policy": "compact",
                                     "min.compaction.lag.ms": str(k.events_retention_s * 1000)}),
              TopicSpec(HOLD, k.partitions, mail)]
    specs += [TopicSpec(retry_topic(d), k.partitions, mail) for d in sorted(set(cfg.delivery.retry_schedule_s))]
    return specs
