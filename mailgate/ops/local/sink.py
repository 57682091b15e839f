"""`mailgate sink --listen HOST:PORT`: a stand-in SMTP server that accepts every message and prints one line each.

For a first run and for containers: it stands in for the primary server and an outbound gateway, as Postfix's
smtp-sink does, but runs as any user (smtp-sink needs `-u USER` as root) and says what it got. Reads: SMTP.
Emits: on stdout, `sink HOST:PORT: accepted <message-id> from=<sender> to=<rcpt,...> bytes=N` per message.
Runs until SIGTERM/SIGINT; a port it cannot bind is one line on stderr and exit status 1 (from the CLI).
"""
from __future__ import annotations

import asyncio
import re
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailgate.core.runtime import run_until_stopped

_QUEUE_ID = re.compile(rb"^Received:.*?\bid ([0-9A-Z]{26})\b", re.S | re.M | re.I)


class SinkHandler:
    """Accepts every message and reports it; keeps nothing."""

    def __init__(self, name: str, out=None) -> None:
        self.name = name
        self.out = out or sys.stdout
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        head = data.split(b"\r\n\r\n", 1)[0]
        m = _QUEUE_ID.search(head)
        self.count += 1
        print(f"sink {self.name}: accepted {m.group(1).decode() if m else '-'} from=<{envelope.mail_from}> "
              f"to=<{','.join(envelope.rcpt_tos)}> bytes={len(data)}", file=self.out, flush=True)
        return "250 2.0.0 Ok: accepted by mailgate sink"


def parse_listen(spec: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:25`) → (host, port); ValueError with the reason."""
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {spec!r}: expected HOST:PORT with a port from 1 to 65535")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(host: str, port: int, stop: asyncio.Event, out=None) -> None:
    handler = SinkHandler(f"{host}:{port}", out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.invalid", ident="mailgate sink", decode_data=False,
                     data_size_limit=64 * 1024 * 1024, enable_SMTPUTF8=True),
        host=host, port=port, reuse_address=True)
    print(f"sink {host}:{port}: listening", file=out or sys.stdout, flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def run(spec: str) -> None:
    host, port = parse_listen(spec)
    run_until_stopped(lambda stop: serve(host, port, stop))
