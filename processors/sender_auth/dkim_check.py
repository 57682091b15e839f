"""DKIM (RFC 6376) verification of every signature in one message, with dkimpy.

Reads: the raw message and the resolver (public keys at `<selector>._domainkey.<domain>`). Emits: one `DkimResult`
per DKIM-Signature field — pass, fail (bad signature, body hash, missing or unusable key), or temperror when DNS
did not answer. dkimpy (the dkimpy project, also behind dkimpy-milter) does the canonicalization and crypto; only
its DNS function is ours. Blocking: run it in a worker thread.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import dkim

from mailgate.mail.authres.resolver import DnsTempError, Resolver

_SIG = re.compile(rb"^DKIM-Signature\s*:", re.I | re.M)
_log = logging.getLogger("mailgate.dkim")  # dkimpy reports unusable keys here


@dataclass(frozen=True)
class DkimResult:
    result: str
    domain: str
    selector: str
    b: str = ""
    """The first 8 characters of the signature (header.b, RFC 6008), to tell signatures apart."""


def _tag(field: bytes, name: bytes) -> str:
    m = re.search(rb"[;\s:]" + name + rb"\s*=\s*([^;]*)", field)
    return re.sub(rb"\s+", b"", m.group(1)).decode("ascii", "replace") if m else ""


def _signature_fields(head: bytes) -> list[bytes]:
    unfolded = re.sub(rb"\r\n(?=[ \t])", b"", head)
    return [line for line in unfolded.split(b"\r\n") if _SIG.match(line)]


def check_dkim(resolver: Resolver, message: bytes) -> list[DkimResult]:
    head = message.partition(b"\r\n\r\n")[0]
    fields = _signature_fields(head)

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        records = resolver.txt(text)
        return records[0] if records else None

    results = []
    for idx, field in enumerate(fields):
        domain, selector = _tag(field, b"d").lower(), _tag(field, b"s")
        try:
            ok = dkim.DKIM(message, logger=_log).verify(idx=idx, dnsfunc=dnsfunc)
            result = "pass" if ok else "fail"
        except DnsTempError:
            result = "temperror"
        except dkim.DKIMException:
            result = "fail"
        results.append(DkimResult(result, domain, selector, _tag(field, b"b")[:8]))
    return results
