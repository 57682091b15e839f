"""SMTP line endings (RFC 5321 section 2.3.8): a line ends with CRLF; a CR or LF on its own is a bare line ending.

Reads: message bytes, or message bytes already split at CRLF. Used by ingress (refuse or repair) and by egress
(a body it cannot vouch for is made CRLF before DATA). Emits: whether they hold a bare CR or LF, and the
bytes with every bare CR, bare LF and CRLF made one CRLF. Ingress refuses or repairs a body with bare line endings
by these (`ingress.bare_lf`); its DATA reader finds them in the split it measures line lengths with.
"""
from __future__ import annotations

CRLF = b"\r\n"


def bare_in_lines(lines: list[bytes]) -> bool:
    """Do the pieces of a `split(CRLF)` hold a CR or LF? What is left of one once the CRLFs are gone is a bare one."""
    rest = b"".join(lines)
    return b"\r" in rest or b"\n" in rest


def has_bare_line_ending(data: bytes) -> bool:
    """Is there a LF not after a CR, or a CR not before a LF? (Three counts over the bytes, no copy of them: every
    CR and every LF belongs to a CRLF exactly when there are as many of each as of CRLF.)"""
    crlf = data.count(CRLF)
    return data.count(b"\n") != crlf or data.count(b"\r") != crlf


def to_crlf(data: bytes) -> bytes:
    """Every bare CR, bare LF and CRLF as CRLF."""
    return data.replace(CRLF, b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)
