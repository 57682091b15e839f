"""Cache purge as a control event: `mailgate cache purge` appends `CachePurgeRequested` to `mail.config`, and every
ingress and processor follows that topic and forgets the cached user-verification answers it names, and, for a
purge of everything or of a domain, the cached domain lists of `web_service` domain verification.

Reads: `CachePurgeRequested` records handed on by the process's one `mail.config` follower (`LiveConfig`), those
written after its snapshot (an older purge cannot concern answers cached after it). Emits: `CachePurgeRequested`
(key `cache-purge`) from `request_purge`; a log line per purge applied.
"""
from __future__ import annotations

import getpass
import logging
import uuid
from typing import Callable, Mapping, Protocol

from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.live_config import LiveConfig
from mailgate.mail.outputs import Output, append_once
from schemas import CachePurgeRequested

log = logging.getLogger("mailgate.cache")

PURGE_KEY = "cache-purge"
"""Key of purge requests on the compacted config topic (only the latest need survive compaction)."""


async def request_purge(cfg: Config, target: str | None, operator: str | None = None) -> CachePurgeRequested:
    """Append a purge request for `target` (address, domain, or None for all) and wait for Kafka's ack."""
    record = CachePurgeRequested(occurred_at=now_ms(), node=cfg.node_name, operator=operator or getpass.getuser(),
                                 target=target.strip().lower() if target else None, request_id=uuid.uuid4().hex)
    await append_once(cfg, f"mailgate-cache-purge-{cfg.node_name}", [Output(topics.CONFIG, PURGE_KEY, record)])
    return record


class Purgeable(Protocol):
    def purge(self, target: str | None = None) -> int: ...


def apply_purge(directories: Mapping[str, Purgeable], record) -> int:
    """Forget what `record` names in every cache (user answers or domain lists); how many entries were dropped."""
    return sum(d.purge(record.target) for d in directories.values())


def follow_purges(live: LiveConfig, directories: Callable[[], Mapping[str, Purgeable]], role: str,
                  domain_lists: Callable[[], Mapping[str, Purgeable]] = dict) -> None:
    """Apply every purge request that the process's one `mail.config` follower (`live`) sees to `directories()`
    and `domain_lists()`."""

    def handle(record) -> None:
        dropped = apply_purge(directories(), record) + apply_purge(domain_lists(), record)
        log.info("%s applied cache purge request=%s target=%s operator=%s forgot=%d", role, record.request_id,
                 record.target or "(all)", record.operator, dropped)

    live.on_record(CachePurgeRequested, handle)
