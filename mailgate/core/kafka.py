"""Kafka client settings for every stage, and idempotent topic creation.

Reads: `kafka` config and `mailgate.core.topics`. Emits: configured aiokafka producers, consumers and admin clients.
Producers are idempotent (acks=all); consumers never auto-commit: each stage commits after its work is durable.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mailgate.core.config import Config
from mailgate.core.topics import declared_topics, max_record_bytes

log = logging.getLogger("mailgate.core.kafka")


def _common(cfg: Config, client_id: str) -> dict[str, Any]:
    k = cfg.kafka
    opts: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers, "client_id": client_id,
                            "security_protocol": k.security.protocol}
    sec = k.security
    if sec.protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(cafile=str(sec.ca_file) if sec.ca_file else None)
    if sec.protocol.startswith("SASL"):
        opts["sasl_mechanism"] = sec.sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = sec.sasl_username
        opts["sasl_plain_password"] = sec.sasl_password.reveal() if sec.sasl_password else None
    return opts


def producer(cfg: Config, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) whose request size matches the topics' max.message.bytes."""
    k = cfg.kafka
    opts = {**_common(cfg, client_id), "enable_idempotence": True, "acks": "all",
            "compression_type": None if k.compression == "none" else k.compression,
            "max_request_size": max_record_bytes(cfg), "linger_ms": 2,
            "request_timeout_ms": 15000, **overrides}
    return AIOKafkaProducer(**opts)


def consumer(cfg: Config, client_id: str, group_id: str | None, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that commits only when told, reads committed records, and fetches records up to the max size."""
    opts = {**_common(cfg, client_id), "group_id": group_id, "enable_auto_commit": False,
            "auto_offset_reset": "earliest", "isolation_level": "read_committed",
            "max_partition_fetch_bytes": max_record_bytes(cfg), "fetch_max_bytes": max(max_record_bytes(cfg),
                                                                                      50 * 1024 * 1024),
            **overrides}
    return AIOKafkaConsumer(*topics, **opts)


def faust_settings(cfg: Config, client_id: str) -> dict[str, Any]:
    """faust App settings from the same figures as the aiokafka clients above (`_common`): bootstrap servers,
    TLS and SASL (as faust credentials), compression, acks=all and the max record size, so the processor joins any
    cluster the other stages can."""
    import faust  # only the processor needs faust; the other stages do not pay for its import
    opts = _common(cfg, client_id)
    credentials = None
    if "sasl_mechanism" in opts:
        credentials = faust.SASLCredentials(username=opts["sasl_plain_username"],
                                            password=opts["sasl_plain_password"],
                                            ssl_context=opts.get("ssl_context"), mechanism=opts["sasl_mechanism"])
    elif "ssl_context" in opts:
        credentials = faust.SSLCredentials(opts["ssl_context"])
    k = cfg.kafka
    return {"broker": [f"kafka://{s}" for s in k.bootstrap_servers], "broker_client_id": client_id,
            "broker_credentials": credentials, "producer_acks": -1,
            "producer_compression_type": None if k.compression == "none" else k.compression,
            "producer_max_request_size": max_record_bytes(cfg), "consumer_max_fetch_size": max_record_bytes(cfg)}


async def ensure_topics(cfg: Config, attempts: int = 30) -> list[str]:
    """Create every declared topic that does not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**_common(cfg, "mailgate-admin"))
    for i in range(attempts):
        try:
            await admin.start()
            break
        except Exception as err:  # broker still starting
            if i == attempts - 1:
                raise
            log.info("waiting for Kafka at %s: %s", cfg.kafka.bootstrap_servers, err)
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(s.name, s.partitions, cfg.kafka.replication_factor, topic_configs=s.config)
                  for s in declared_topics(cfg) if s.name not in existing]
        if not wanted:
            return []
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def assign_whole_topic(c: AIOKafkaConsumer, topic: str, from_beginning: bool = True) -> list:
    """Assign every partition of `topic` to a group-less consumer (after fetching metadata) and seek."""
    from aiokafka import TopicPartition
    cluster = await c._client.fetch_all_metadata()  # aiokafka has no public "metadata of topic X" call
    parts = cluster.partitions_for_topic(topic) or set()
    if not parts:
        raise RuntimeError(f"topic {topic} does not exist: run `mailgate topics`")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    c.assign(tps)
    if from_beginning:
        await c.seek_to_beginning(*tps)
    else:
        await c.seek_to_end(*tps)
    return tps
