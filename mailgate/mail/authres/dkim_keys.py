"""DKIM keys: make an RSA or Ed25519 signing key, and the DNS TXT record that publishes its public half.

Reads: nothing. Emits: a PEM private key (PKCS#8) and `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>` (RFC 6376
3.6.1), or for Ed25519 `v=DKIM1; k=ed25519; p=<base64 of the 32-byte public key>` (RFC 8463 4.2); and the key in
the form dkimpy signs with (`signing_key`): the PEM for RSA, base64 of the 32-byte private key for Ed25519.
"""
from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

DEFAULT_BITS = 2048
"""RFC 8301: signers must use at least 1024 bits and should use 2048."""


def generate_private_key(bits: int = DEFAULT_BITS) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_ed25519_key() -> bytes:
    """An Ed25519 signing key (RFC 8463) as PKCS#8 PEM."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def signing_key(private_pem: bytes) -> tuple[bytes, bytes]:
    """(the key as dkimpy's sign() takes it, the signature algorithm a=) of a PEM private key."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return base64.b64encode(raw), b"ed25519-sha256"
    return private_pem, b"rsa-sha256"


def public_record(private_pem: bytes) -> str:
    """The TXT value to publish at `<selector>._domainkey.<domain>`."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def record_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain.rstrip('.')}"
