"""One admin connection for operator commands, and the plain answers they need from Kafka.

Reads: the cluster's metadata, topic configs, consumer groups and offsets through aiokafka's admin client.
Emits: plain values (partition counts, config dicts, group members and committed offsets); a broker that cannot
be reached within the wait is `KafkaUnreachable` (exit status 4), never a traceback.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from mailgate.core.config import Config
from mailgate.core.kafka import _common
from mailgate.ops.cli.exits import KafkaUnreachable


@asynccontextmanager
async def admin_client(cfg: Config, wait_s: float = 0) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; retried for `wait_s` seconds (a broker still starting), then KafkaUnreachable."""
    deadline = time.monotonic() + wait_s
    while True:
        admin = AIOKafkaAdminClient(**_common(cfg, "mailgate-operator"), request_timeout_ms=10000)
        try:
            await admin.start()
            break
        except KafkaError as err:
            await admin.close()
            if time.monotonic() >= deadline:
                raise KafkaUnreachable(str(err)) from err
            await asyncio.sleep(1)
    try:
        yield admin
    finally:
        await admin.close()


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Topic name → number of partitions, for the names that exist."""
    out = {}
    for t in await admin.describe_topics(names):
        if t.get("error_code", 0) == 0:
            out[t["topic"]] = len(t["partitions"])
    return out


async def topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Topic name → every config value Kafka reports (defaults included)."""
    if not names:
        return {}
    out: dict[str, dict[str, str]] = {}
    for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
        for res in resp.resources:
            _err, _msg, _type, name, entries = res[:5]
            out[name] = {e[0]: e[1] for e in entries}
    return out


async def end_offsets(cfg: Config, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The log-end offset of each partition (a group-less consumer asks; the admin client has no such call)."""
    from mailgate.core import kafka
    if not tps:
        return {}
    c = kafka.consumer(cfg, "mailgate-operator", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        return await c.end_offsets(tps)
    finally:
        await c.stop()


async def group_members(admin: AIOKafkaAdminClient, group: str) -> tuple[str, list[dict]]:
    """(state, members as {client_id, host}) of one consumer group; ("Dead", []) when it has none or never existed."""
    try:
        resp = (await admin.describe_consumer_groups([group]))[0]
    except KafkaError:  # no coordinator yet: no group has ever committed on this cluster
        return "Dead", []
    for err, name, state, _ptype, _proto, members in resp.groups:
        if name == group and err == 0:
            return state, [{"client_id": m[1], "host": m[2].lstrip("/")} for m in members]
    return "Dead", []


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    try:
        return {tp: om.offset for tp, om in (await admin.list_consumer_group_offsets(group)).items()}
    except KafkaError:
        return {}
