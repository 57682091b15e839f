"""A slow downstream SMTP server for the benchmark: accepts every message after sleeping `delay_ms` at the final dot.

Usage: python bench/slow_sink.py PORT DELAY_MS [TIMINGS_JSON]. Prints `mesg=<count>` followed by a carriage return
after every message, as `smtp-sink -c` does, so bench/run.py counts both sinks the same way. With TIMINGS_JSON it
writes, when stopped, each message's (MAIL received, final dot received) as `time.monotonic()` seconds: the
client's round trips as the server sees them (bench/sink_view.py). Loopback only; stops on SIGTERM.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


class SlowHandler:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.count = 0
        self.timings: list[tuple[float, float]] = []

    async def handle_MAIL(self, server, session, envelope, address, options) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.mail_at = time.monotonic()
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.timings.append((envelope.mail_at, time.monotonic()))
        await asyncio.sleep(self.delay_s)
        self.count += 1
        sys.stdout.write(f"mesg={self.count}\r")
        sys.stdout.flush()
        return "250 2.0.0 Ok: slow sink"


async def main(port: int, delay_ms: int, timings: str | None) -> None:
    handler = SlowHandler(delay_ms / 1000)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="slow-sink.test", data_size_limit=None),
                                      "127.0.0.1", port, backlog=256)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if timings:
        with open(timings, "w") as fh:  # noqa: ASYNC230 (once, after the server closed)
            json.dump(handler.timings, fh)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
