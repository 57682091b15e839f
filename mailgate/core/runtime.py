"""Running a stage's asyncio main until SIGTERM or SIGINT, the same way in every stage process."""
from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` in a new event loop; SIGTERM/SIGINT set `stop` so that `main` can finish cleanly."""
    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(wrapper())
