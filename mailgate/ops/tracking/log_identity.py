"""Which log the tracking store was built from: the Kafka cluster's id and a topic's id, and each partition's end.

Reads: the configured cluster: one Metadata request (version 12, the first to carry topic ids, KIP-516; aiokafka
itself asks for at most version 5, which has the cluster id only) and the partitions' end offsets.
Emits: `LogIdentity` (cluster id, topic id, begin and end offset per partition), and `mismatch()`: why a store's
recorded identity and positions do not belong to this log, or None.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from io import BytesIO

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (AbstractType, Boolean, CompactArray, CompactString, Int16, Int32, Schema,
                                     TaggedFields)

from mailgate.core import kafka
from mailgate.core.config import Config
from mailgate.ops.kafka.admin import admin_client, partition_counts


class _Uuid(AbstractType[str]):
    """A topic id, written as Kafka's tools print it (`kafka-topics.sh --describe`: URL-safe base64, no padding)."""

    @classmethod
    def encode(cls, value: str | None) -> bytes:
        return base64.urlsafe_b64decode(value + "==") if value else bytes(16)

    @classmethod
    def decode(cls, data: BytesIO) -> str:
        return base64.urlsafe_b64encode(data.read(16)).decode().rstrip("=")


class _MetadataResponse_v12(Response):
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", CompactArray(("node_id", Int32), ("host", CompactString("utf-8")), ("port", Int32),
                                 ("rack", CompactString("utf-8")), ("tags", TaggedFields))),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        ("topics", CompactArray(
            ("error_code", Int16), ("name", CompactString("utf-8")), ("topic_id", _Uuid), ("is_internal", Boolean),
            ("partitions", CompactArray(
                ("error_code", Int16), ("partition_index", Int32), ("leader_id", Int32), ("leader_epoch", Int32),
                ("replica_nodes", CompactArray(Int32)), ("isr_nodes", CompactArray(Int32)),
                ("offline_replicas", CompactArray(Int32)), ("tags", TaggedFields))),
            ("topic_authorized_operations", Int32), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _MetadataRequest_v12(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = _MetadataResponse_v12
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicMetadata(Request[_MetadataRequest_v12]):
    API_KEY = 3

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def build(self, request_struct_class):
        return request_struct_class([(None, self.topic, {})], False, False, {})


@dataclass(frozen=True)
class LogIdentity:
    cluster_id: str
    topic_id: str | None
    """None when the broker is older than Kafka 2.8 (no topic ids): only the cluster id and the ends are checked."""
    ends: dict[int, int]
    beginnings: dict[int, int]

    def events(self) -> int:
        """How many records the topic holds now (what a rebuild projects)."""
        return sum(e - self.beginnings.get(p, 0) for p, e in self.ends.items())

    def state(self, topic: str) -> dict[str, str | None]:
        """What a store built from this log records about it."""
        return {"cluster_id": self.cluster_id, f"topic_id/{topic}": self.topic_id}


async def read_log(cfg: Config, topic: str, wait_s: float = 30) -> LogIdentity:
    """The identity and extent of `topic` in the configured cluster (KafkaUnreachable when no broker answers)."""
    async with admin_client(cfg, wait_s=wait_s) as admin:
        cluster_id, topic_id = await identify(admin, topic)
        count = (await partition_counts(admin, [topic])).get(topic, 0)
    tps = [TopicPartition(topic, p) for p in range(count)]
    c = kafka.consumer(cfg, "mailgate-tracker-check", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        ends = await c.end_offsets(tps) if tps else {}
        beginnings = await c.beginning_offsets(tps) if tps else {}
    finally:
        await c.stop()
    return LogIdentity(cluster_id, topic_id, {tp.partition: o for tp, o in ends.items()},
                       {tp.partition: o for tp, o in beginnings.items()})


async def identify(admin: AIOKafkaAdminClient, topic: str) -> tuple[str, str | None]:
    """(cluster id, topic id) as the broker tells them."""
    try:
        response = await admin._send_request(_TopicMetadata(topic))
    except NotImplementedError:  # the broker speaks no Metadata v12
        return (await admin.describe_cluster())["cluster_id"], None
    obj = response.to_object()
    ids = [t["topic_id"] for t in obj["topics"] if t["name"] == topic and t["error_code"] == 0]
    return obj["cluster_id"], ids[0] if ids else None


def mismatch(stored: dict[str, str], positions: dict[int, int], log: LogIdentity, topic: str) -> str | None:
    """Why the store (its recorded identity and positions) was not built from `log`, or None when it was (or is
    empty, or predates recording an identity and its positions fit the log)."""
    cluster, topic_id = stored.get("cluster_id"), stored.get(f"topic_id/{topic}")
    if cluster and cluster != log.cluster_id:
        return f"the store was built from Kafka cluster {cluster}, this is cluster {log.cluster_id}"
    if topic_id and log.topic_id and topic_id != log.topic_id:
        return f"the store was built from {topic} topic id {topic_id}, this {topic} is {log.topic_id} (re-created)"
    beyond = sorted(p for p, o in positions.items() if o > log.ends.get(p, 0))
    if beyond:
        p = beyond[0]
        return (f"the store's position {positions[p]} of {topic} partition {p} is beyond its end "
                f"{log.ends.get(p, 0)} (the log was replaced or truncated)")
    return None
