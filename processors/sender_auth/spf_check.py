"""SPF (RFC 7208) of one message: may the client's IP send for the MAIL FROM domain (or the HELO name)?

Reads: client IP, HELO name, MAIL FROM and the resolver. Emits: an `SpfResult` (pass, fail, softfail, neutral, none,
permerror, temperror). The evaluation is pyspf's, the reference implementation kept by the pyspf project (macros,
include/redirect, the 10-lookup and void-lookup limits); its DNS goes through our caching resolver: pyspf calls the
module-level `spf.DNSLookup`, which this module points at the resolver of the check running in that thread.
Blocking: run it in a worker thread.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

import spf

from mailgate.mail.authres.resolver import DnsTempError, Resolver

_RESOLVER: contextvars.ContextVar[Resolver] = contextvars.ContextVar("spf_resolver")


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str
    """The domain checked: MAIL FROM's, or the HELO name for the null sender."""
    mail_from: str
    """The identity given to SPF (postmaster@helo for the null sender, RFC 7208 2.4)."""
    explanation: str = ""


def _lookup(name: str, qtype: str, strict: bool = True, timeout: float | None = None) -> list:
    """pyspf's DNSLookup contract: [((name, qtype), value)], TempError when DNS did not answer."""
    try:
        rdata = _RESOLVER.get().records(name, qtype)
    except DnsTempError as err:
        raise spf.TempError(str(err)) from None
    out = []
    for r in rdata:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))
    return out


spf.DNSLookup = _lookup


def check_spf(resolver: Resolver, client_ip: str, helo: str, mail_from: str) -> SpfResult:
    helo = helo or "unknown"
    sender = mail_from or f"postmaster@{helo}"
    domain = sender.rpartition("@")[2].lower()
    token = _RESOLVER.set(resolver)
    try:
        result, explanation = spf.check2(i=client_ip, s=sender, h=helo, querytime=10)
    except (ValueError, spf.PermError) as err:  # a client IP pyspf cannot parse (as recorded, not an IP)
        result, explanation = "permerror", str(err)
    finally:
        _RESOLVER.reset(token)
    return SpfResult(result, domain, sender, explanation)
