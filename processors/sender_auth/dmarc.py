"""DMARC (RFC 7489): the From domain's policy, identifier alignment, and the result.

Reads: the message's From header, the SPF and DKIM results, and the resolver (`_dmarc.<domain>` TXT). Emits a
`DmarcResult`: pass (an SPF or DKIM pass whose domain aligns with From), fail, none (no policy published), permerror
(no single From domain) or temperror (DNS did not answer), with the policy that applies (p=, or sp= for a
subdomain whose policy came from its organizational domain).

Own code rather than a library: the policy lookup and alignment are a page of logic over dnspython, and the
DMARC libraries on PyPI (checkdmarc) are record *auditing* tools with many dependencies. The organizational domain
comes from the Public Suffix List shipped by `publicsuffixlist`. `pct=` is not applied (the policy is taken at 100%).
"""
from __future__ import annotations

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
    """none | quarantine | reject: what the domain asks for mail that fails; None without a record."""


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


def check_dmarc(resolver: Resolver, message: bytes, spf_result: SpfResult, dkim_results: list[DkimResult]) -> DmarcResult:
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
    return DmarcResult("pass" if spf_ok or dkim_ok else "fail", domain, policy)
