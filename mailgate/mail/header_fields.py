"""Single header fields read from a raw message's header block, for recording (Message-ID, Subject), not editing.

Reads: the message bytes as received (CRLF line ends). Emits: the unfolded value of a named field, or None.
Only the header block (up to the first empty line, at most `MAX_HEAD_BYTES`) is looked at; values are not
MIME-decoded, since they are for an operator's search box, not for display as the sender meant them.
"""
from __future__ import annotations

MAX_HEAD_BYTES = 64 * 1024
"""Header blocks longer than this are read only this far."""


def header_block(message: bytes) -> str:
    head = message[:MAX_HEAD_BYTES]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[:end + 2]
    return head.decode("utf-8", errors="replace")


def header_value(message: bytes, name: str, max_chars: int = 200) -> str | None:
    """The first `name:` field's value, unfolded and stripped, cut to `max_chars`; None when absent."""
    want = name.lower() + ":"
    lines = header_block(message).split("\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(want):
            parts = [line[len(want):]]
            for cont in lines[i + 1:]:
                if not cont.startswith((" ", "\t")):
                    break
                parts.append(cont)
            return " ".join(p.strip() for p in parts).strip()[:max_chars]
    return None
