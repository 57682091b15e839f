"""Where each MIME leaf part of a message lies in its raw bytes, so that one part can be replaced and every other
byte kept.

Reads: the raw message. Emits: the leaf parts in order (the order of `email.message.Message.walk`, message/rfc822
parts walked into) as (start, end) byte ranges, each holding the part's own header block and body; and `replace`,
which puts new bytes in one part's place. Per RFC 2046 the line break before a boundary delimiter belongs to the
delimiter, so a range ends before it.
"""
from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _body_start(raw: bytes, start: int, end: int) -> int | None:
    if raw.startswith((b"\r\n", b"\n"), start):  # no header fields at all
        return start + (2 if raw.startswith(b"\r\n", start) else 1)
    m = _HEADER_END.search(raw, start, end)
    return m.end() if m else None


def leaf_ranges(raw: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    end = len(raw) if end is None else end
    body = _body_start(raw, start, end)
    if body is None:
        return [(start, end)]
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[start:body])
    ctype = headers.get_content_type()
    if ctype == "message/rfc822":
        return leaf_ranges(raw, body, end)
    boundary = headers.get_param("boundary") if ctype.startswith("multipart/") else None
    if not isinstance(boundary, str) or not boundary:
        return [(start, end)]
    delim = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*(?:\r?\n|$)",
                       re.MULTILINE)
    found = [m for m in delim.finditer(raw, body, end)]
    if not found:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    for this, following in zip(found, found[1:]):
        if this.group(1):  # the close delimiter: the epilogue follows
            break
        out += leaf_ranges(raw, this.end(), following.start())
    return out or [(start, end)]


def replace(raw: bytes, span: tuple[int, int], new: bytes) -> bytes:
    return raw[:span[0]] + new + raw[span[1]:]
