"""Log lines a client cannot write into: what a client sent is escaped and cut before it reaches a log line, and a
flood of the same protocol warning is counted and summarised instead of written line by line.

Reads: every log record of the process (a filter on the one handler `mailgate.core.logs` installs). Emits: the same
record with each text argument made printable — control characters, escape sequences and other unprintable
characters written as `\\xNN` / `\\uNNNN`, as Postfix's `printable()` replaces them — and cut to `MAX_ARG_CHARS`
with a note of how much was cut; for aiosmtpd's `mail.log` logger (which logs client commands), at most
`BURST_LINES` lines of one message template per `WINDOW_S`, then one line saying how many like it were left out.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_ARG_CHARS = 256
"""The longest text argument a log line carries (a client's 100 KB command line is cut to this)."""
BURST_LINES = 20
"""Lines of one aiosmtpd message template written per window before the rest are only counted."""
WINDOW_S = 60.0
SUMMARISED_LOGGERS = ("mail.log",)
"""Loggers whose messages a client triggers at will (aiosmtpd's protocol warnings: `unrecognised`, `bogus`)."""


def printable(text: str, limit: int = MAX_ARG_CHARS) -> str:
    """`text` with every unprintable character escaped and cut to `limit` characters."""
    if text.isprintable() and len(text) <= limit:
        return text
    out = []
    for ch in text[:limit]:
        if ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    escaped = "".join(out)
    return escaped if len(text) <= limit else f"{escaped}…(+{len(text) - limit} chars)"


def _safe(value: object) -> object:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, (bytes, bytearray)):
        return printable(bytes(value).decode("utf-8", "backslashreplace"))
    return value


class ClientTextFilter(logging.Filter):
    """Escapes and cuts every text argument of a record; summarises floods of the `SUMMARISED_LOGGERS`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.windows: dict[tuple[str, str], list] = {}
        """(logger, template) -> [window start, lines written, lines left out]; at most one entry per template."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_safe(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _safe(v) for k, v in record.args.items()}
        if isinstance(record.msg, str) and not record.args:
            record.msg = printable(record.msg, 4 * MAX_ARG_CHARS)
        if record.name not in SUMMARISED_LOGGERS or record.levelno >= logging.ERROR:
            return True
        return self._within_burst(record)

    def _within_burst(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self.windows.get(key)
        if window is None or now - window[0] >= WINDOW_S:
            left_out = window[2] if window is not None else 0
            self.windows[key] = window = [now, 0, 0]
            if left_out:
                like = repr(printable(key[1])).replace("%", "%%")  # the template's own % signs are text here
                record.msg = f"{left_out} more lines like {like} were left out; then: {record.msg}"
        if window[1] >= BURST_LINES:
            window[2] += 1
            return False
        window[1] += 1
        return True
