"""The running configuration of a stage: the YAML file, with gateways kept current from `mail.config`.

Reads: `mail.config` at start and then follows it with a group-less consumer. Emits: `current` (a validated Config)
and calls each listener with the new Config whenever a GatewayConfigured/GatewayRemoved arrives, so a change made
with `mailgate config apply` or `mailgate gateway disable` takes effect in running stages without a restart.
An event that would make the configuration invalid is logged and ignored; the last good configuration stays.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

from mailgate.core import kafka, topics
from mailgate.core.config import Config, ConfigError
from mailgate.core.config_events import GATEWAY_EVENTS, GatewayState, config_key, effective_config, read_state
from schemas import UndecodableRecord, decode

log = logging.getLogger("mailgate.core.config")


class LiveConfig:
    def __init__(self, base: Config) -> None:
        self.base = base
        self.current = base
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
            for recs in batch.values():
                for r in recs:
                    try:
                        e = decode(r.value)
                    except UndecodableRecord as err:
                        log.warning("ignored a record in %s: %s", topics.CONFIG, err)
                        continue
                    if type(e).__name__ not in GATEWAY_EVENTS:
                        continue
                    settings = json.loads(e.settings_json) if type(e).__name__ == "GatewayConfigured" else None
                    self.state[config_key(e.kind, e.name)] = GatewayState(e.kind, e.name, settings, e)
                    log.info("configuration change: %s %s gateway %s by %s", type(e).__name__, e.kind, e.name,
                             e.operator)
                    changed = True
            if changed:
                self._apply()

    def _apply(self) -> None:
        try:
            new = effective_config(self.base, self.state)
        except ConfigError as err:
            log.error("ignored an invalid configuration change: %s", err)
            return
        self.current = new
        for listener in self.listeners:
            listener(new)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
