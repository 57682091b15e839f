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
"""A message routed and ready for delivery: `MessageRouted` with the body. Key: `<destination>#<n>` (the destination
is the gateway name, `n` the message id's CRC-32 modulo `delivery.partitions_per_destination`), so one destination's
mail is spread over that many partitions and egress replicas; with 1 the key is the destination alone, and one
destination's mail shares a partition (processors/routing.py)."""

RETRY_PREFIX = "mail.retry."
"""`mail.retry.<delay>s`: a deferred message waiting for its next attempt: `MessageRouted` with `not_before`.
One topic per delay tier, so records in a tier come due in the order they were written."""

QUARANTINE = "mail.quarantine"
"""Held spam: `MessageQuarantined` with the body, until an operator releases or deletes it. Key: message id."""

EVENTS = "mail.events"
"""The append-only audit log: every fact any stage learns about a message, without bodies. Key: message id."""

DELIVERED = "mail.delivered"
"""Index of delivered (message id, recipient) pairs, read by egress to suppress duplicate deliveries. Compacted
(the latest state per pair) and deleted by time: a pair is kept `delivered_lifetime_ms` (as long as a duplicate can
still arrive), then Kafka drops it."""

DLQ = "mail.dlq"
"""Records that could not be decoded or processed: `DeadLettered` with the original bytes and the reason."""

CONFIG = "mail.config"
"""Compacted configuration: the latest `GatewayConfigured` / `GatewayRemoved` per gateway (key `<kind>/<name>`), the
latest `SettingsConfigured` per live settings section (key `settings/<section>`: `spam`, `antivirus`,
`relay_networks`, `auth_users`, `dkim_keys`; mailgate/core/config_events.py), and `CachePurgeRequested` (key
`cache-purge`), which every ingress and processor follows from its end. Every stage follows the topic
(mailgate/core/live_config.py)."""


RECORD_OVERHEAD_BYTES = 1024 * 1024
"""Room a record needs beyond the message body: the envelope, our added headers and the event's other fields."""


def max_record_bytes(cfg: Config) -> int:
    """The largest record a mailgate topic holds: the largest message ingress accepts plus the overhead. Topics
    (`max.message.bytes`), the local broker, producers and consumers (aiokafka and faust) all use this one figure."""
    return cfg.ingress.max_message_bytes + RECORD_OVERHEAD_BYTES


def delivered_lifetime_ms(cfg: Config) -> int:
    """How long a delivered (message id, recipient) is remembered: while any mail topic can still hold (or replay)
    the message — the longest queue lifetime or the mail topics' retention — plus a margin."""
    d = cfg.delivery
    longest_s = max(d.max_queue_lifetime_s, d.backup_mx_queue_lifetime_s, cfg.kafka.mail_retention_s)
    return (longest_s + d.delivered_index_margin_s) * 1000


DELIVERED_SEGMENT_MS = 3600 * 1000
"""mail.delivered rolls a segment every hour, so expired pairs are deleted within an hour of their lifetime."""


CONTROL = "mail.control"
"""Compacted queue control, followed from its beginning by every egress replica (no consumer group): the latest
`QueueCommandIssued` per message (key `message/<id>`: hold, release, delete, bounce; a flush `flush/message/<id>`,
`message/<id>` before 2026-11-30), the latest
`DestinationSuspended` / `DestinationResumed` per destination (key `destination/<kind>/<name>`), and the latest
destination flush (key `flush/<kind>/<name>`). Its own topic, not mail.config: one record per commanded message,
read only by egress, and replayed whole at start.

Bounded by tombstones, not by time: a hold and a suspension without `--until` last until an operator ends them, so
a time retention would silently release held mail and resume suspended destinations. Egress replaces each finished
command (a release, resume or flush a day after the longest retry tier; a delete or bounce once no copy of its
message can be read again) with a conditional tombstone (mailgate/mail/queue_commands.py)."""

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
    max_record = str(max_record_bytes(cfg))
    common = {"min.insync.replicas": str(k.min_insync_replicas)}
    mail = {**common, "max.message.bytes": max_record, "retention.ms": str(k.mail_retention_s * 1000)}
    specs = [
        TopicSpec(RECEIVED, k.partitions, mail),
        TopicSpec(OUTBOUND, k.partitions, mail),
        TopicSpec(QUARANTINE, k.partitions, {**mail, "retention.ms": str(k.events_retention_s * 1000)}),
        TopicSpec(EVENTS, k.partitions, {**common, "retention.ms": str(k.events_retention_s * 1000)}),
        TopicSpec(DELIVERED, k.partitions, {**common, "cleanup.policy": "compact,delete",
                                            "retention.ms": str(delivered_lifetime_ms(cfg)),
                                            "segment.ms": str(DELIVERED_SEGMENT_MS)}),
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
