"""The running configuration of a stage: the YAML file, with gateways kept current from `mail.config`.

Reads: `mail.config` at start and then follows it with a group-less consumer. Emits: `current` (a validated Config)
and its `version` (config_events.config_version), and calls each listener with the new Config whenever a
GatewayConfigured/GatewayRemoved/SettingsConfigured arrives, so a change made with `mailgate config apply`, the
admin page or `mailgate gateway disable` takes effect in running stages without a restart. Each applied version is
logged, shown on the stage's /metrics (`mailgate_config_version_info`) with the delay from the event's write to its
application (`mailgate_config_apply_delay_seconds`). An event that would make the configuration invalid is logged
and ignored; the last good configuration stays.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from mailgate.core import kafka, metrics, topics
from mailgate.core.config import Config, ConfigError
from mailgate.core.config_events import (CONFIG_EVENTS, GatewayState, config_version, effective_config, read_state,
                                         state_entry, state_key)
from schemas import UndecodableRecord, decode

log = logging.getLogger("mailgate.core.config")


class LiveConfig:
    def __init__(self, base: Config, stage: str | None = None) -> None:
        self.base = base
        self.stage = stage
        self.current = base
        self.version = config_version(base)
        self.state: dict[str, GatewayState] = {}
        self.listeners: list[Callable[[Config], None]] = []
        self._task: asyncio.Task | None = None
        self._consumer = None

    async def start(self) -> Config:
        try:
            self.state, _ = await read_state(self.base)
            self.current = effective_config(self.base, self.state)
        except ConfigError as err:
            log.error("configuration in %s is invalid, using the file's gateways: %s", topics.CONFIG, err)
        self._applied(config_version(self.current), None)
        c = self._consumer = kafka.consumer(self.base, f"mailgate-config-{self.base.node_name}", None,
                                            isolation_level="read_uncommitted")
        await c.start()
        await kafka.assign_whole_topic(c, topics.CONFIG, from_beginning=False)
        self._task = asyncio.create_task(self._follow())
        return self.current

    def on_change(self, listener: Callable[[Config], None]) -> None:
        self.listeners.append(listener)

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=500, max_records=100)
            changed = False
            written_at = None
            for recs in batch.values():
                for r in recs:
                    try:
                        e = decode(r.value)
                    except UndecodableRecord as err:
                        log.warning("ignored a record in %s: %s", topics.CONFIG, err)
                        continue
                    if not isinstance(e, CONFIG_EVENTS):
                        continue
                    entry = state_entry(e)
                    self.state[state_key(e)] = entry
                    log.info("configuration change: %s %s %s by %s", type(e).__name__, entry.kind, entry.name,
                             e.operator)
                    changed = True
                    written_at = max(written_at or 0, e.occurred_at)
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
        if self.stage is not None:
            metrics.config_applied(self.stage, previous, version, delay_ms)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
