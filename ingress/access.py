"""The allow and block entries of an inbound gateway, matched against one RCPT's client, sender and HELO.

Reads: `InboundGateway.access` (live, from mail.config), the client IP, the envelope sender and the HELO name.
Emits: the matching entry — a block entry wins over any allow entry — or None. The handler answers a block with
`554 5.7.1` (RecipientRejected, check `access`); an allowed one is not refused by the DNS lists.
"""
from __future__ import annotations

from mailgate.core.config import AccessRule
from mailgate.core.netaddr import AddressSet


def _sender_matches(value: str, sender: str) -> bool:
    value, sender = value.lower(), sender.lower()
    if "@" in value and not value.startswith("@"):
        return sender == value
    domain = sender.rpartition("@")[2]
    want = value.lstrip("@")
    return bool(domain) and (domain == want or (not value.startswith("@") and domain.endswith("." + want)))


def matches(rule: AccessRule, client: str, sender: str, helo: str) -> bool:
    if rule.kind == "client":
        return client in AddressSet.parse([rule.value])
    if rule.kind == "sender":
        return bool(sender) and _sender_matches(rule.value, sender)
    return bool(helo) and rule.value.lower() == helo.lower()


def decide(rules: list[AccessRule], client: str, sender: str, helo: str) -> AccessRule | None:
    """The block entry that matches, else the allow entry that matches, else None."""
    found = [r for r in rules if matches(r, client, sender, helo)]
    return next((r for r in found if r.action == "block"), None) or next(iter(found), None)
