"""Cache purge as a control event: `mailgate cache purge` appends `CachePurgeRequested` to `mail.config`, and every
ingress and processor follows that topic and forgets the cached user-verification answers it names.

Reads: `mail.config` (group-less, from its end when the follower starts: an older purge cannot concern answers
cached after it). Emits: `CachePurgeRequested` (key `cache-purge`) from `request_purge`; a log line per purge
applied. Other records on `mail.config` (gateway configuration) are skipped. Kafka down: the follower retries.
"""
from __future__ import annotations

import asyncio
import getpass
import logging
import uuid
from typing import Mapping

from mailgate.core import kafka, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail.directory.cache import CachedDirectory
from schemas import CachePurgeRequested, UndecodableRecord, decode, encode

log = logging.getLogger("mailgate.cache")

PURGE_KEY = b"cache-purge"
"""Key of purge requests on the compacted config topic (only the latest need survive compaction)."""


async def request_purge(cfg: Config, target: str | None, operator: str | None = None) -> CachePurgeRequested:
    """Append a purge request for `target` (address, domain, or None for all) and wait for Kafka's ack."""
    record = CachePurgeRequested(occurred_at=now_ms(), node=cfg.node_name, operator=operator or getpass.getuser(),
                                 target=target.strip().lower() if target else None, request_id=uuid.uuid4().hex)
    p = kafka.producer(cfg, f"mailgate-cache-purge-{cfg.node_name}")
    await p.start()
    try:
        await p.send_and_wait(topics.CONFIG, encode(record), key=PURGE_KEY)
    finally:
        await p.stop()
    return record


def apply_purge(directories: Mapping[str, CachedDirectory], record) -> int:
    """Forget what `record` names in every directory; how many cached addresses were dropped."""
    return sum(d.purge(record.target) for d in directories.values())


class PurgeFollower:
    """Follows `mail.config` in the background and applies purge requests to `directories`."""

    def __init__(self, cfg: Config, directories: Mapping[str, CachedDirectory], role: str) -> None:
        self.cfg = cfg
        self.directories = directories
        self.role = role
        self.following = asyncio.Event()
        """Set once the follower is positioned at the end of the topic: later purges will be applied."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.directories:
            self._task = asyncio.create_task(self._run(), name="cache purge follower")

    async def _run(self) -> None:
        delay = 0.5
        while True:
            c = kafka.consumer(self.cfg, f"mailgate-{self.role}-purges-{self.cfg.node_name}", None,
                               isolation_level="read_uncommitted")
            try:
                await c.start()
                await kafka.assign_whole_topic(c, topics.CONFIG, from_beginning=False)
                for tp in c.assignment():
                    await c.position(tp)  # resolve the seek now, so a purge sent after this point is seen
                self.following.set()
                log.info("%s following cache purges on %s", self.role, topics.CONFIG)
                delay = 0.5
                async for msg in c:
                    self._handle(msg.key, msg.value)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("cache purge follower: %s; retrying in %.1f s", type(err).__name__, delay)
                self.following.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                await c.stop()

    def _handle(self, key: bytes | None, value: bytes | None) -> None:
        if key != PURGE_KEY or value is None:
            return
        try:
            record = decode(value)
        except UndecodableRecord as err:
            log.warning("cache purge request not understood: %s", err)
            return
        if type(record).__name__ != "CachePurgeRequested":
            return
        dropped = apply_purge(self.directories, record)
        log.info("%s applied cache purge request=%s target=%s operator=%s forgot=%d", self.role, record.request_id,
                 record.target or "(all)", record.operator, dropped)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
