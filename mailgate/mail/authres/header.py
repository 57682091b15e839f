"""Authentication-Results header fields (RFC 8601): build ours, and remove forged ones claiming our authserv-id.

Reads: a raw message (CRLF lines) and the results of the checks. Emits: a new raw message with any
`Authentication-Results:` field whose authserv-id is ours removed (RFC 8601 section 5: a receiver must not trust
one it did not add) and ours prepended, folded under 78 columns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NAME = b"Authentication-Results"
_FIELD = re.compile(rb"^Authentication-Results\s*:", re.I)


@dataclass(frozen=True)
class Method:
    """One `method=result` clause with its properties, e.g. spf=pass smtp.mailfrom=a@b.example."""

    method: str
    result: str
    comment: str = ""
    props: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        parts = [f"{self.method}={self.result}"]
        if self.comment:
            parts.append(f"({self.comment})")
        parts += [f"{k}={_value(v)}" for k, v in self.props if v]
        return " ".join(parts)


def _value(v: str) -> str:
    """A property value as a token, or a quoted string when it holds specials (RFC 8601 2.2, RFC 2045 token)."""
    return v if re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~@]+", v) and v.count("@") <= 1 else \
        '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_value(authserv_id: str, methods: list[Method]) -> str:
    """The field body: `authserv-id; method=result ...; ...` (or `; none` when nothing was checked)."""
    return "; ".join([authserv_id] + [m.text() for m in methods]) if methods else f"{authserv_id}; none"


def fold(name: bytes, value: str) -> bytes:
    """`Name: value` folded at the clause boundaries, CRLF-terminated."""
    out, line = [], name.decode() + ":"
    for i, clause in enumerate(value.split("; ")):
        piece = clause + (";" if i < value.count("; ") else "")
        for word in piece.split(" "):
            if len(line) + 1 + len(word) > 78 and line.strip():
                out.append(line)
                line = "\t" + word
            else:
                line = f"{line} {word}" if line else word
    out.append(line)
    return ("\r\n".join(out) + "\r\n").encode()


def authserv_id_of(field: bytes) -> str:
    """The authserv-id of one raw (possibly folded) Authentication-Results field."""
    body = field.split(b":", 1)[1] if b":" in field else b""
    body = re.sub(rb"\r?\n[ \t]+", b" ", body)
    body = re.sub(rb"\([^)]*\)", b" ", body)  # CFWS comments
    return body.split(b";", 1)[0].strip().split(b" ")[0].decode("utf-8", "replace").lower()


def strip_ours(message: bytes, authserv_id: str) -> tuple[bytes, int]:
    """The message without header fields claiming `authserv_id`, and how many were removed."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        head, body = message, b""
    lines = head.split(b"\r\n")
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept, removed = [], 0
    for f in fields:
        raw = b"\r\n".join(f)
        if _FIELD.match(raw) and authserv_id_of(raw) == authserv_id.lower():
            removed += 1
            continue
        kept.append(raw)
    return b"\r\n".join(kept) + (sep or b"") + body, removed


def add_results(message: bytes, authserv_id: str, methods: list[Method]) -> tuple[bytes, str, int]:
    """(new message, the header value added, forged fields removed)."""
    cleaned, removed = strip_ours(message, authserv_id)
    value = header_value(authserv_id, methods)
    return fold(NAME, value) + cleaned, value, removed
