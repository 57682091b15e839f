"""DKIM keys: make an RSA signing key, and the DNS TXT record that publishes its public half (RFC 6376 3.6.1).

Reads: nothing. Emits: a PEM private key (PKCS#8) and `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`.
"""
from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_BITS = 2048
"""RFC 8301: signers must use at least 1024 bits and should use 2048."""


def generate_private_key(bits: int = DEFAULT_BITS) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_record(private_pem: bytes) -> str:
    """The TXT value to publish at `<selector>._domainkey.<domain>`."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def record_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain.rstrip('.')}"
