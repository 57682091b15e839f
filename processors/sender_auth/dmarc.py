"""DMARC (RFC 7489): the From domain's policy, identifier alignment, and the result.

Reads: the message's From header, the SPF and DKIM results, and the resolver (`_dmarc.<domain>` TXT). Emits a
`DmarcResult`: pass (an SPF or DKIM pass whose domain aligns with From), fail, none (no policy published), permerror
(no single From domain) or temperror (DNS did not answer), with the policy that applies (p=, or sp= for a
subdomain whose policy came from its organizational domain).

Own code rather than a library: the policy lookup and alignment are a page of logic over dnspython, and the
DMARC libraries on PyPI (checkdmarc) are record *auditing* tools with many dependencies. The organizational domain
comes from the Public Suffix List shipped by `publicsuffixlist`.
`pct=` (RFC 7489 6.6.4): the policy applies to that percentage of failing mail; the rest gets the next lower policy
(reject -> quarantine, quarantine -> none). Which messages are in the percentage is decided by a hash of the message,
not a random draw, so a message processed again (a replay, a processor restart) gets the same policy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList

from mailgate.mail.authres.resolver import DnsTempError, Resolver
from processors.sender_auth.dkim_check import DkimResult
from processors.sender_auth.spf_check import SpfResult

_PSL = PublicSuffixList()


@dataclass(frozen=True)
class DmarcResult:
    result: str
    from_domain: str
    policy: str | None = None
    """none | quarantine | reject: what the domain asks for this message if it fails (after pct=); None without a
    record."""
    sampled_out: bool = False
    """pct= left this failing message out of the published policy: `policy` is the next lower one."""


LOWER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
"""The next lower policy, for failing mail outside pct= (RFC 7489 6.6.4)."""


def pct_of(tags: dict[str, str]) -> int:
    """The pct= tag, 0..100; 100 when absent or not a number (RFC 7489 6.3: default 100)."""
    value = tags.get("pct", "100")
    return min(int(value), 100) if value.isdigit() else 100


def in_sample(message: bytes, pct: int) -> bool:
    """Is this message among the `pct` percent the policy applies to? Stable for the same bytes."""
    if pct >= 100:
        return True
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big") % 100 < pct


def org_domain(domain: str) -> str:
    return _PSL.privatesuffix(domain.lower().rstrip(".")) or domain.lower()


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


def from_domain(message: bytes) -> str | None:
    """The single RFC5322.From domain, or None when there is no From, several, or one without a domain."""
    head = message.partition(b"\r\n\r\n")[0].decode("utf-8", "replace").replace("\r\n\t", " ").replace("\r\n ", " ")
    values = [line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("from:")]
    if len(values) != 1:
        return None
    addresses = [a for _, a in getaddresses(values) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].rpartition("@")[2].lower().rstrip(">").rstrip(".")


def _tags(record: bytes) -> dict[str, str]:
    tags = {}
    for part in record.decode("ascii", "replace").split(";"):
        k, eq, v = part.partition("=")
        if eq:
            tags[k.strip().lower()] = v.strip()
    return tags


def _record(resolver: Resolver, domain: str) -> dict[str, str] | None:
    found = [r for r in resolver.txt(f"_dmarc.{domain}") if r.lower().startswith(b"v=dmarc1")]
    return _tags(found[0]) if len(found) == 1 else None


def lookup_policy(resolver: Resolver, domain: str) -> tuple[dict[str, str] | None, bool]:
    """(the DMARC tags of `domain`, or of its organizational domain; whether they came from the latter)."""
    tags = _record(resolver, domain)
    if tags is not None:
        return tags, False
    org = org_domain(domain)
    if org != domain:
        tags = _record(resolver, org)
        if tags is not None:
            return tags, True
    return None, False


def check_dmarc(resolver: Resolver, message: bytes, spf_result: SpfResult,
                dkim_results: list[DkimResult]) -> DmarcResult:
    domain = from_domain(message)
    if domain is None:
        return DmarcResult("permerror", "")
    try:
        tags, inherited = lookup_policy(resolver, domain)
    except DnsTempError:
        return DmarcResult("temperror", domain)
    if tags is None or tags.get("p", "").lower() not in ("none", "quarantine", "reject"):
        return DmarcResult("none", domain)
    policy = tags["p"].lower()
    if inherited and tags.get("sp", "").lower() in ("none", "quarantine", "reject"):
        policy = tags["sp"].lower()
    spf_ok = spf_result.result == "pass" and aligned(spf_result.domain, domain, tags.get("aspf", "r").lower())
    dkim_ok = any(r.result == "pass" and aligned(r.domain, domain, tags.get("adkim", "r").lower())
                  for r in dkim_results)
    if spf_ok or dkim_ok:
        return DmarcResult("pass", domain, policy)
    if in_sample(message, pct_of(tags)):
        return DmarcResult("fail", domain, policy)
    return DmarcResult("fail", domain, LOWER[policy], sampled_out=True)
