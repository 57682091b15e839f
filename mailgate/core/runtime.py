"""Running a stage's asyncio main until SIGTERM or SIGINT, the same way in every stage process.

The event loop is uvloop's where it is installed (a dependency of mailgate; the stdlib loop otherwise): less CPU per
socket event and per callback than asyncio's selector loop, measured in docs/performance.md.
"""
from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop if it can be imported, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def use_fast_loop_policy() -> None:
    """For code that makes its own loops (faust's worker and its consumer thread): make them uvloop's too."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` in a new event loop; SIGTERM/SIGINT set `stop` so that `main` can finish cleanly."""
    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(wrapper())
