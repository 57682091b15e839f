"""The recipient directories and SmarterMail domain lists of one process's current inbound gateways, kept through
configuration changes.

Reads: the inbound gateways of each configuration version the process applies. Emits: `mapping` (gateway name →
`CachedDirectory`) and `domain_lists` (gateway name → `CachedDomainList`), changed in place on every change, so the
cache purges and the metrics that hold them see the current ones. A directory or list a change replaced or removed
is closed `RETIRE_AFTER_S` later, once the work that began before the change (an SMTP transaction in ingress, a
message in the processor) is over. Ingress's recipient lookup and the processor's pipeline both keep theirs with
this.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable

from mailgate.core.config import InboundGateway
from mailgate.mail.directory.build import (build_directories, build_domain_lists, rebuild_directories,
                                          rebuild_domain_lists)
from mailgate.mail.directory.cache import CachedDirectory
from mailgate.mail.directory.domains import CachedDomainList

RETIRE_AFTER_S = 300.0
"""How long what a configuration change replaced stays open for the work that began before the change."""


class LiveDirectories:
    def __init__(self, gateways: Iterable[InboundGateway], mapping: dict[str, CachedDirectory] | None = None,
                 domain_lists: dict[str, CachedDomainList] | None = None) -> None:
        """`mapping`, `domain_lists`: directories and domain lists already built for `gateways` (built here when
        None)."""
        self.gateways = list(gateways)
        self.mapping = build_directories(self.gateways) if mapping is None else mapping
        self.domain_lists = build_domain_lists(self.gateways) if domain_lists is None else domain_lists
        self._retiring: set[asyncio.Task] = set()

    def reconfigure(self, gateways: Iterable[InboundGateway],
                    also_close: Iterable[Callable[[], Awaitable[object]]] = ()) -> None:
        """Directories and domain lists for `gateways`: an unchanged gateway keeps its own and their caches, a
        changed one gets new ones. What is no longer used — the old directories and lists, and `also_close` (other
        resources of the replaced version) — is closed `RETIRE_AFTER_S` from now."""
        gateways = list(gateways)
        new, retired = rebuild_directories(self.mapping, self.gateways, gateways)
        self.mapping.clear()
        self.mapping.update(new)
        lists, retired_lists = rebuild_domain_lists(self.domain_lists, self.gateways, gateways)
        self.domain_lists.clear()
        self.domain_lists.update(lists)
        self.gateways = gateways
        self._close_later([*also_close, *(d.aclose for d in retired), *(lst.aclose for lst in retired_lists)])

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
        """Close every directory and domain list now, the retired ones too."""
        for task in list(self._retiring):
            task.cancel()
        for d in self.mapping.values():
            await d.aclose()
        for lst in self.domain_lists.values():
            await lst.aclose()
