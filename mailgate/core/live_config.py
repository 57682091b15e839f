"""The running configuration of a stage, and the one `mail.config` follower of its process.

Reads: `mail.config` through one `TopicReader`: a snapshot to the end at start, then a follower that continues from
the snapshot's own end offsets (per partition), so a record written between the two is applied, not skipped.
Emits: `current` (a validated Config, the YAML file's with gateways and live settings sections from the topic) and
its `version` (config_events.config_version), calls each `on_change` listener with the new Config when a
GatewayConfigured/GatewayRemoved/SettingsConfigured arrives, and hands every other record that arrives after the
snapshot to the subscribers of its type (`on_record`, e.g. CachePurgeRequested for the directory caches). Each
applied version is logged and shown on the stage's /metrics (`mailgate_config_version_info`), with the delay from the
event's write to its application (`mailgate_config_apply_delay_seconds`). An event that would make the configuration
invalid is logged and ignored; the last good one stays.
Kafka down while following: the follower reopens its reader at the position it had reached and goes on.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from mailgate.core import metrics, topics
from mailgate.core.backoff import Backoff
from mailgate.core.config import Config, ConfigError
from mailgate.core.config_events import (CONFIG_EVENTS, GatewayState, config_version, effective_config,
                                         read_state_to, state_entry, state_key)
from mailgate.core.topic_reader import Offsets, TopicReader, Undecodable

log = logging.getLogger("mailgate.core.config")


class LiveConfig:
    def __init__(self, base: Config, role: str = "stage") -> None:
        self.base = base
        self.role = role
        self.current = base
        self.version = config_version(base)
        self.state: dict[str, GatewayState] = {}
        self.listeners: list[Callable[[Config], None]] = []
        self.subscribers: dict[type, list[Callable[[Any], None]]] = {}
        self.position: Offsets = {}
        """Next offset to apply, per partition of mail.config."""
        self.following = asyncio.Event()
        """Set once the snapshot is applied and the follower runs: later records will be applied."""
        self._task: asyncio.Task | None = None
        self._reader: TopicReader | None = None

    def on_change(self, listener: Callable[[Config], None]) -> None:
        self.listeners.append(listener)

    def on_record(self, event_type: type, handler: Callable[[Any], None]) -> None:
        """Call `handler` with every `event_type` record written after the snapshot (control records)."""
        self.subscribers.setdefault(event_type, []).append(handler)

    async def start(self) -> Config:
        """Read the snapshot, then follow from its end offsets in the background; the configuration now."""
        reader = self._reader = TopicReader(self.base, topics.CONFIG, f"mailgate-config-{self.base.node_name}")
        await reader.open()
        await reader.seek("beginning")
        self.state, self.position = await self._snapshot(reader)
        try:
            self.current = effective_config(self.base, self.state)
        except ConfigError as err:
            log.error("configuration in %s is invalid, using the file's gateways: %s", topics.CONFIG, err)
        self._applied(config_version(self.current), None)
        self._task = asyncio.create_task(self._follow(), name="mail.config follower")
        return self.current

    async def _snapshot(self, reader: TopicReader) -> tuple[dict[str, GatewayState], Offsets]:
        """The gateways as of the topic's end now, and that end (where the follower continues)."""
        ends = await reader.end_offsets()
        state, _ = await read_state_to(reader, ends)
        return state, ends

    async def _follow(self) -> None:
        backoff = Backoff(0.5, 10)
        while True:
            try:
                if self._reader is None:
                    self._reader = TopicReader(self.base, topics.CONFIG, f"mailgate-config-{self.base.node_name}")
                    await self._reader.open()
                await self._reader.seek(self.position)
                self.following.set()
                log.info("%s following cache purges and gateway changes on %s from %s", self.role, topics.CONFIG,
                         self.position)
                backoff.reset()
                async for batch in self._reader.batches():
                    self._dispatch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("%s follower: %s; retrying in %.1f s", topics.CONFIG, type(err).__name__,
                            backoff.delay_s)
                self.following.clear()
                if self._reader is not None:
                    reader, self._reader = self._reader, None
                    await reader.close()
                await backoff.wait()

    def _dispatch(self, batch: list) -> None:
        changed = False
        written_at = 0
        for r, e in batch:
            self.position[r.partition] = r.offset + 1
            if isinstance(e, Undecodable):
                log.warning("ignored a record in %s: %s", topics.CONFIG, e.reason)
            elif isinstance(e, CONFIG_EVENTS):
                entry = self.state[state_key(e)] = state_entry(e)
                log.info("configuration change: %s %s %s by %s", type(e).__name__, entry.kind, entry.name, e.operator)
                changed = True
                written_at = max(written_at, e.occurred_at)
            else:
                for handler in self.subscribers.get(type(e), []):
                    try:
                        handler(e)
                    except Exception:  # one subscriber's bug must not stop the others or the follower
                        log.exception("%s subscriber failed on %s", topics.CONFIG, type(e).__name__)
        if changed:
            self._apply(written_at)

    def _apply(self, written_at_ms: int | None = None) -> None:
        try:
            new = effective_config(self.base, self.state)
        except ConfigError as err:
            log.error("ignored an invalid configuration change: %s", err)
            return
        self.current = new
        for listener in self.listeners:
            try:
                listener(new)
            except Exception:  # one stage part failing to take it must not stop the follower
                log.exception("a part of this stage could not apply the configuration change")
        self._applied(config_version(new), written_at_ms)

    def _applied(self, version: str, written_at_ms: int | None) -> None:
        """Record that `version` is what this process applies from now on (log line and metrics)."""
        previous, self.version = self.version, version
        delay_ms = None if written_at_ms is None else max(0, int(time.time() * 1000) - written_at_ms)
        log.info("configuration version %s applied%s", version,
                 "" if delay_ms is None else f" ({delay_ms} ms after it was written)")
        if self.role in metrics.STAGES:
            metrics.config_applied(self.role, previous, version, delay_ms)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        self.following.clear()
