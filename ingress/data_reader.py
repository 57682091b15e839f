"""Reading the DATA of one SMTP transaction in large chunks instead of line by line.

Reads: the session's asyncio StreamReader after `354`. Emits: the message with dot-stuffing undone, or why it was
refused (too big, a text line too long, connection lost). The end is exactly what aiosmtpd's own reader accepts and
nothing else: `.` CRLF at the very start, or CRLF `.` CRLF — bare CR/LF look-alikes (`\\n.\\n`, `\\r.\\r`, …) are
data, never an end (SMTP smuggling). Memory stays bounded by the size limit: past it, data is drained, not kept.
"""
from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from mailgate.mail.line_endings import bare_in_lines

END = b".\r\n"


class DataState(enum.Enum):
    OK = "ok"
    TOO_MUCH = "too_much"    # over the size limit: 552
    TOO_LONG = "too_long"    # a text line over the line limit: 500
    LOST = "lost"            # the client went away before the end


@dataclass(frozen=True)
class Data:
    state: DataState
    content: bytes = b""
    bare_line_ending: bool = False
    """A CR or LF in `content` that is not part of a CRLF (found with the line lengths, in the same pass)."""


def _ends_here(tail: bytes) -> bool:
    """`tail` ends with `.` CRLF: is that dot alone on its line (or the whole message)?"""
    return tail == END or tail.endswith(b"\r\n" + END)


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> Data:
    """Read up to the end of DATA; `size_limit` counts the bytes as sent, `line_limit` includes CRLF."""
    limit = size_limit or 64 * 1024 * 1024
    saved = reader._limit  # type: ignore[attr-defined]  # aiosmtpd reads commands with a 1001-byte limit; DATA may be as large as the message
    reader._limit = limit + len(END)  # type: ignore[attr-defined]
    buf = bytearray()
    tail = b""  # the last bytes read, kept while draining an oversized message
    too_much = False
    try:
        while True:
            try:
                chunk = await reader.readuntil(END)
            except asyncio.LimitOverrunError as err:
                tail = ((tail if too_much else bytes(buf[-5:])) + await reader.read(err.consumed))[-5:]
                too_much = True
                buf.clear()
                if _ends_here(tail):  # the end was found, past the limit
                    return Data(DataState.TOO_MUCH)
                continue
            except asyncio.IncompleteReadError:
                return Data(DataState.LOST)
            if too_much:
                tail = (tail + chunk)[-5:]
                if _ends_here(tail):
                    return Data(DataState.TOO_MUCH)
                continue
            buf += chunk
            if len(buf) - len(END) > limit:
                too_much, tail = True, bytes(buf[-5:])
                buf.clear()
                if _ends_here(tail):
                    return Data(DataState.TOO_MUCH)
                continue
            if _ends_here(bytes(buf[-5:])) if len(buf) >= 5 else bytes(buf) == END:
                break
    finally:
        reader._limit = saved  # type: ignore[attr-defined]
    content = bytes(buf[:-len(END)])
    lines = content.split(b"\r\n")
    if content and max(map(len, lines)) + 2 > line_limit:
        return Data(DataState.TOO_LONG)
    bare = bare_in_lines(lines)
    if content.startswith(b"."):
        content = content[1:]
    return Data(DataState.OK, content.replace(b"\r\n.", b"\r\n"), bare)
