"""Envelope addresses as relay decisions must see them: the address egress would deliver to, or a refusal.

Relay tricks that other MTAs have been fooled by are refused outright rather than interpreted: `%` and `!` routing,
source routes (`@host:user@dom`), address literals (`user@[1.2.3.4]`), quoted local parts holding `@`, and more than
one `@`. What is left is `local@domain` with a syntactically valid domain.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$&'*+/=?^_`{|}~.-]{1,64}$")


class BadAddress(ValueError):
    """The address is malformed or a relay trick; the message says which."""


@dataclass(frozen=True)
class Mailbox:
    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


def parse_mailbox(address: str, require_fqdn: bool = True) -> Mailbox:
    """`local@domain` → Mailbox (domain lowercased); BadAddress for anything a relay check cannot trust.

    `require_fqdn=False` also takes a single-label domain (`root@vm`), as Postfix does for senders by default."""
    a = address.strip()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    if a.startswith("@"):
        raise BadAddress("source route")
    if a.startswith('"'):
        raise BadAddress("quoted local part")
    if a.count("@") != 1:
        raise BadAddress("not exactly one @")
    local, domain = a.split("@")
    if "%" in local or "!" in local or "!" in domain:
        raise BadAddress("% or ! routing")
    if domain.startswith("["):
        raise BadAddress("address literal")
    if not _LOCAL_ATOM.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise BadAddress("malformed local part")
    d = domain.lower().rstrip(".")
    try:
        d = d.encode("idna").decode("ascii") if not d.isascii() else d
    except UnicodeError:
        raise BadAddress("malformed domain") from None
    if not _DOMAIN.match(d):
        raise BadAddress("malformed domain")
    if require_fqdn and "." not in d:
        raise BadAddress("not a fully qualified domain")
    return Mailbox(local, d)


def domain_of(address: str) -> str:
    """The lowercased domain of an address already accepted by parse_mailbox; '' for the null sender."""
    return address.rsplit("@", 1)[1].lower() if "@" in address else ""
