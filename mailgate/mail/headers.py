"""The header section of a raw RFC 5322 message, and byte-preserving edits of it (the one `header_block`, used by
DSNs, the processor's verification and spam actions).

Reads: the message as bytes (CRLF line ends; a message with bare-LF line ends gets LF in the lines added).
Emits: new bytes in which only the touched header fields differ; every other byte, including the folding of
untouched fields and the whole body, is unchanged, so DKIM signatures over untouched fields still verify.
The `email` package's generator is never used: it re-folds and re-encodes.

Placement: `add_header` puts the new field at the very TOP of the header block, as trace fields are added
(RFC 5322 3.6.7). DKIM verifiers pick the bottom-most instance of each signed field name, so a field added at
the top never changes what a signature covers, even when the same name is already present.
A value with CR, LF or NUL is refused (ValueError): it would inject header fields. A non-ASCII value is written
as RFC 2047 UTF-8 encoded words.
"""
from __future__ import annotations

import base64
import re

_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # printable ASCII except ':' (RFC 5322 ftext)


def _split(msg: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its continuation lines and line ends) and the rest: blank line + body."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(msg):
        nl = msg.find(b"\n", pos)
        end = len(msg) if nl < 0 else nl + 1
        line = msg[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
        pos = end
    return fields, msg[pos:]


def _eol(msg: bytes) -> bytes:
    nl = msg.find(b"\n")
    return b"\n" if nl == 0 or (nl > 0 and msg[nl - 1:nl] != b"\r") else b"\r\n"


def _name_of(field: bytes) -> bytes | None:
    first = field.split(b"\n", 1)[0]
    if b":" not in first:
        return None
    return first.split(b":", 1)[0].strip().lower()


def _unfold(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n(?=[ \t])", b"", raw).rstrip(b"\r\n").strip(b" \t")


def _encode_value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header value {value!r} contains CR, LF or NUL")
    if value.isascii():
        return value.encode("ascii")
    words = [value[i:i + 10] for i in range(0, len(value), 10)]  # 10 chars → ≤ 40 bytes → an encoded word ≤ 75
    return b" ".join(b"=?utf-8?b?" + base64.b64encode(w.encode("utf-8")) + b"?=" for w in words)


def _field(name: str, value: str, eol: bytes) -> bytes:
    raw_name = name.encode("ascii", "replace")
    if not name.isascii() or not _NAME.fullmatch(raw_name):
        raise ValueError(f"{name!r} is not a valid header field name")
    return raw_name + b": " + _encode_value(value) + eol


def header_block(msg: bytes) -> bytes:
    """The header section (RFC 5322 section 2.1): every line up to the first empty line, each with its line end,
    without the empty line. A message with no empty line is all header; one that starts with an empty line has
    none (b""). CRLF and bare-LF line ends are both understood, so an LF-only message is split where it should be."""
    return b"".join(_split(msg)[0])


def header_values(msg: bytes, name: str) -> list[str]:
    """The unfolded values of every field called `name` (any case), top to bottom; undecodable bytes replaced."""
    want = name.lower().encode("ascii", "replace")
    out = []
    for field in _split(msg)[0]:
        if _name_of(field) == want:
            out.append(_unfold(field.split(b":", 1)[1]).decode("utf-8", "replace"))
    return out


def add_header(msg: bytes, name: str, value: str) -> bytes:
    """`msg` with `name: value` inserted as the first header line (see the module doc for why the top)."""
    return _field(name, value, _eol(msg)) + msg


def set_header(msg: bytes, name: str, value: str) -> bytes:
    """`msg` with exactly one `name` field: the first occurrence rewritten in place and any later ones removed,
    or, when there is none, the field added at the top."""
    new = _field(name, value, _eol(msg))
    want = name.lower().encode("ascii")
    fields, rest = _split(msg)
    hits = [i for i, f in enumerate(fields) if _name_of(f) == want]
    if not hits:
        return new + msg
    if not fields[hits[0]].endswith(b"\n"):  # last line of a message without a line end
        new = new.rstrip(b"\r\n")
    fields[hits[0]] = new
    for i in reversed(hits[1:]):
        del fields[i]
    return b"".join(fields) + rest


def prefix_subject(msg: bytes, text: str) -> bytes:
    """`msg` with `text` and a space before the value of its first Subject field (folding kept), unchanged when the
    subject already starts with `text`; with `Subject: text` added after the last header when there is none."""
    prefix = _encode_value(text)
    if not prefix:
        return msg
    fields, rest = _split(msg)
    for i, field in enumerate(fields):
        if _name_of(field) != b"subject":
            continue
        head, after = field.split(b":", 1)
        if _unfold(after).startswith(prefix):
            return msg
        gap = b"" if after[:1] in (b" ", b"\t", b"\r", b"\n", b"") else b" "
        fields[i] = head + b": " + prefix + gap + after
        return b"".join(fields) + rest
    eol = _eol(msg)
    if fields and not fields[-1].endswith(b"\n"):
        fields[-1] += eol
    fields.append(b"Subject: " + prefix + eol)
    return b"".join(fields) + rest
