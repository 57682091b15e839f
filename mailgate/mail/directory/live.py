"""The recipient directories of one process's current inbound gateways, kept through configuration changes.

Reads: the inbound gateways of each configuration version the process applies. Emits: `mapping` (gateway name →
`CachedDirectory`), changed in place on every change, so the cache purges and the metrics that hold it see the
current directories. A directory a change replaced or removed is closed `RETIRE_AFTER_S` later, once the work that
began before the change (an SMTP transaction in ingress, a message in the processor) is over. Ingress's recipient
lookup and the processor's pipeline both keep their directories with this.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable

from mailgate.core.config import InboundGateway
from mailgate.mail.directory.build import build_directories, rebuild_directories
from mailgate.mail.directory.cache import CachedDirectory

RETIRE_AFTER_S = 300.0
"""How long what a configuration change replaced stays open for the work that began before the change."""


class LiveDirectories:
    def __init__(self, gateways: Iterable[InboundGateway], mapping: dict[str, CachedDirectory] | None = None) -> None:
        """`mapping`: directories already built for `gateways` (built here when None)."""
        self.gateways = list(gateways)
        self.mapping = build_directories(self.gateways) if mapping is None else mapping
        self._retiring: set[asyncio.Task] = set()

    def reconfigure(self, gateways: Iterable[InboundGateway],
                    also_close: Iterable[Callable[[], Awaitable[object]]] = ()) -> None:
        """Directories for `gateways`: an unchanged gateway keeps its directory and cache, a changed one gets a new
        one. What is no longer used — the old directories and `also_close` (other resources of the replaced
        version) — is closed `RETIRE_AFTER_S` from now."""
        new, retired = rebuild_directories(self.mapping, self.gateways, list(gateways))
        self.mapping.clear()
        self.mapping.update(new)
        self.gateways = list(gateways)
        self._close_later([*also_close, *(d.aclose for d in retired)])

    def _close_later(self, closers: list[Callable[[], Awaitable[object]]]) -> None:
        if not closers:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(RETIRE_AFTER_S)
            finally:
                for close in closers:
                    await close()
        try:
            task = asyncio.get_running_loop().create_task(later())
        except RuntimeError:  # no loop (configured before the process started): nothing in flight to wait for
            return
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        """Close every directory now, the retired ones too."""
        for task in list(self._retiring):
            task.cancel()
        for d in self.mapping.values():
            await d.aclose()
