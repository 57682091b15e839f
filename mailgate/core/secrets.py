"""Sealing secrets for storage in Kafka: AES-256-GCM with a key from the environment, never clear text.

Reads: `MAILGATE_SECRET_KEY` (32 bytes, base64) at the moment of use. Emits: `v1:<base64(nonce|ciphertext)>` tokens,
and the clear text back from a token. A token is useless without the key; the key is never written anywhere.
"""
from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "MAILGATE_SECRET_KEY"


class SecretKeyError(Exception):
    """No usable key in MAILGATE_SECRET_KEY, or a token that this key did not seal."""


def new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _key() -> bytes:
    raw = os.environ.get(KEY_ENV)
    if not raw:
        raise SecretKeyError(f"{KEY_ENV} is not set (generate one with `mailgate config keygen`)")
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise SecretKeyError(f"{KEY_ENV} is not base64") from None
    if len(key) != 32:
        raise SecretKeyError(f"{KEY_ENV} must be 32 bytes, base64-encoded")
    return key


def seal(clear: str) -> str:
    nonce = os.urandom(12)
    return "v1:" + base64.b64encode(nonce + AESGCM(_key()).encrypt(nonce, clear.encode(), b"mailgate")).decode()


def unseal(token: str) -> str:
    if not token.startswith("v1:"):
        raise SecretKeyError("not a sealed secret")
    try:
        blob = base64.b64decode(token[3:], validate=True)
        return AESGCM(_key()).decrypt(blob[:12], blob[12:], b"mailgate").decode()
    except (binascii.Error, InvalidTag, ValueError):
        raise SecretKeyError(f"this secret was not sealed with the key in {KEY_ENV}") from None
