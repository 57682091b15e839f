"""DKIM signing of outbound mail (RFC 6376), the last edit before the bytes go on the wire.

Reads: `dkim_signing` (a key per domain: selector, private key as a secret reference; the header list) and the
message about to be sent. Emits: the message with a `DKIM-Signature` field prepended (rsa-sha256, or
ed25519-sha256 (RFC 8463) for an Ed25519 key; relaxed/relaxed canonicalization, the listed headers that are present
signed, and — with `oversign` — each listed once more, so
nobody can add one after signing), or the message unchanged when no key matches the From domain (or its parent
domains). dkimpy signs; the private key is read from its secret at startup and never logged.
Called by egress right before DATA, after every header edit, so the delivered bytes are the signed bytes.
"""
from __future__ import annotations

import logging
import re

import dkim

from mailgate.core.config import DkimSigningConfig, Secret
from mailgate.mail.authres.dkim_keys import signing_key

log = logging.getLogger("mailgate.egress")
_FROM = re.compile(rb"^From\s*:(.*(?:\r\n[ \t].*)*)", re.I | re.M)
_DOMAIN = re.compile(rb"@([A-Za-z0-9.-]+)")


def from_domain(message: bytes) -> str | None:
    head = message.partition(b"\r\n\r\n")[0]
    found = _FROM.findall(head)
    if len(found) != 1:
        return None
    domains = _DOMAIN.findall(found[0])
    return domains[-1].decode().lower().rstrip(".") if domains else None


def _pem(secret: Secret) -> bytes:
    """The whole PEM: a key file is read entire (a Secret's file gives only its first line)."""
    return secret.file.read_bytes() if secret.file is not None else secret.reveal().encode()


class DkimSigner:
    def __init__(self, cfg: DkimSigningConfig) -> None:
        self._keys = {k.domain.lower().rstrip("."): (k.selector.encode(), *signing_key(_pem(k.private_key)))
                      for k in cfg.keys}
        for k in cfg.keys:  # a wrong key fails at startup, not at the first message
            _, key, algorithm = self._keys[k.domain.lower().rstrip(".")]
            dkim.sign(b"From: a@" + k.domain.encode() + b"\r\n\r\nx\r\n", k.selector.encode(), k.domain.encode(),
                      key, signature_algorithm=algorithm)
        self._headers = [h.encode() for h in cfg.headers]
        if b"from" not in (h.lower() for h in self._headers):
            self._headers.insert(0, b"From")
        self._oversign = cfg.oversign

    def __bool__(self) -> bool:
        return bool(self._keys)

    def key_for(self, domain: str) -> tuple[str, bytes, bytes, bytes] | None:
        """(signing domain, selector, key, algorithm) for `domain` or the nearest parent domain that has a key."""
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            d = ".".join(labels[i:])
            if d in self._keys:
                return (d, *self._keys[d])
        return None

    def sign(self, message: bytes, message_id: str = "-") -> bytes:
        domain = from_domain(message)
        found = self.key_for(domain) if domain else None
        if found is None:
            return message
        d, selector, key, algorithm = found
        head = message.partition(b"\r\n\r\n")[0].lower()
        present = [h for h in self._headers if re.search(rb"(^|\n)" + re.escape(h.lower()) + rb"\s*:", head)]
        include = present + (present if self._oversign else [])
        signature = dkim.sign(message, selector, d.encode(), key, canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=include, signature_algorithm=algorithm)
        log.debug("dkim signed id=%s d=%s s=%s", message_id, d, selector.decode(), extra={"message_id": message_id})
        return signature + message
