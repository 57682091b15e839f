"""Replies to pipelined SMTP commands (RFC 2920) on a connection aiosmtplib opened.

aiosmtplib reads one reply per command it wrote, and drops what the server sends while no command of its own waits,
so commands cannot be pipelined through it. For one mail transaction, `replies_on(transport)` puts a `ReplyReader`
on the connection in place of aiosmtplib's protocol: it keeps every byte the server sends and hands out the replies
in order, however they were split into segments. What aiosmtplib must still see (the connection lost, end of file,
flow control) is passed on to its protocol, and its protocol is put back afterwards.

Reads: the server's bytes. Emits: one `Reply` per command written, in order; ConnectionError when the connection
ends or a reply is malformed or too long, TimeoutError when a reply does not come in time.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from mailgate.mail.smtp_reply import Reply

MAX_REPLY_BYTES = 32 * 1024
"""The longest reply (all its lines) a server may send, as aiosmtplib's own limit."""


class ReplyReader(asyncio.Protocol):
    def __init__(self, previous: asyncio.BaseProtocol) -> None:
        self._previous = previous
        self._buffer = bytearray()
        self._error: ConnectionError | None = None
        self.closed = False
        """connection_lost was called (and passed on): the transport is gone."""
        self._waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool | None:
        self._fail(ConnectionResetError("the server closed the connection"))
        return self._previous.eof_received()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError(f"connection lost: {exc}" if exc else "connection lost"))
        self._previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self._previous.pause_writing()

    def resume_writing(self) -> None:
        self._previous.resume_writing()

    def _fail(self, error: ConnectionError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, timeout_s: float) -> Reply:
        """The next reply, once all its lines are here; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                reply = self._take()
                if reply is not None:
                    return reply
                if self._error is not None:
                    raise self._error
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    def _take(self) -> Reply | None:
        """Parse one whole reply off the front of the buffer, or None if its last line has not come yet."""
        lines: list[bytes] = []
        offset = 0
        while True:
            end = self._buffer.find(b"\n", offset)
            if end < 0:
                if len(self._buffer) > MAX_REPLY_BYTES:
                    raise ConnectionError(f"reply longer than {MAX_REPLY_BYTES} bytes")
                return None
            line = bytes(self._buffer[offset:end + 1])
            offset = end + 1
            if not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):  # "250\r\n" has no text
                raise ConnectionError(f"malformed reply line: {line[:80]!r}")
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self._buffer[:offset]
                return Reply.parse(int(line[:3]), b"\n".join(lines).decode("utf-8", "surrogateescape"))
            if offset > MAX_REPLY_BYTES:
                raise ConnectionError(f"reply longer than {MAX_REPLY_BYTES} bytes")


@contextlib.contextmanager
def replies_on(transport: asyncio.BaseTransport) -> Iterator[ReplyReader]:
    """A ReplyReader on `transport` for the duration of the block; the previous protocol back afterwards (unless
    the connection was lost meanwhile: then it was told so, and nothing is left to read)."""
    previous = transport.get_protocol()
    reader = ReplyReader(previous)
    transport.set_protocol(reader)
    try:
        yield reader
    finally:
        if not reader.closed:
            transport.set_protocol(previous)
