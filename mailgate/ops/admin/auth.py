"""Who may use the admin page: the scrypt password hash, server-side sessions, and the CSRF check.

Reads: `admin.username`, `admin.password_hash`, `admin.session_ttl_s`. Emits: a session cookie (HttpOnly,
SameSite=Strict, the token only — the session lives in this process's memory) and a per-session CSRF token the page
sends back in the `X-CSRF-Token` header on every state-changing request.

Hash format: `scrypt$<n>$<r>$<p>$<salt, base64>$<64-byte key, base64>` (hashlib.scrypt, 16-byte random salt).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

COOKIE = "mailgate_session"
CSRF_HEADER = "X-CSRF-Token"
_N, _R, _P, _DKLEN = 2 ** 14, 8, 1, 64


class BadHash(ValueError):
    """`admin.password_hash` is not in the scrypt$n$r$p$salt$hash format."""


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN)
    return "$".join(["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(key).decode()])


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash; False for an empty or malformed hash (nobody logs in)."""
    try:
        algo, n, r, p, salt, key = stored.split("$")
        if algo != "scrypt":
            raise BadHash("only scrypt hashes are supported")
        want = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                             p=int(p), dklen=len(want), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass
class Session:
    username: str
    csrf_token: str
    expires_at: float


class Sessions:
    """Sessions by token, in memory: a restart of `mailgate admin` logs everybody out."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._by_token: dict[str, Session] = {}

    def create(self, username: str) -> tuple[str, Session]:
        self._expire()
        token = secrets.token_urlsafe(32)
        s = Session(username, secrets.token_urlsafe(32), time.monotonic() + self.ttl_s)
        self._by_token[token] = s
        return token, s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None or s.expires_at < time.monotonic():
            self._by_token.pop(token, None)
            return None
        return s

    def drop(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for t in [t for t, s in self._by_token.items() if s.expires_at < now]:
            del self._by_token[t]


def csrf_ok(session: Session, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(session.csrf_token.encode(), header.encode())
