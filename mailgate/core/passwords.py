"""Password hashes: make one from a clear password, and check a password against a stored one.

Reads: nothing. Emits: `scrypt$<n>$<r>$<p>$<salt, base64>$<64-byte key, base64>` strings (hashlib.scrypt, 16-byte
random salt; the format `admin.password_hash` uses too) and yes/no answers. The clear password is never kept.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2 ** 14, 8, 1, 64


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES)
    return "$".join(["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(key).decode()])


def is_hash(stored: str) -> bool:
    """True when `stored` has the scrypt$n$r$p$salt$key shape (used to check configuration)."""
    parts = stored.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(x.isdigit() for x in parts[1:4])


def check_password(password: str | bytes, stored: str) -> bool:
    """True when `password` matches the stored hash; False for an empty or malformed hash (nobody logs in)."""
    clear = password if isinstance(password, bytes) else password.encode()
    try:
        algo, n, r, p, salt, key = stored.split("$")
        if algo != "scrypt":
            return False
        want = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(clear, salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p),
                             dklen=len(want), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
