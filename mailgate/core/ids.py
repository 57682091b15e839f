"""Message ids: 26-character, time-ordered, unique (ULID layout: 48-bit ms timestamp + 80 random bits, Crockford
base32). Assigned by ingress at MAIL FROM and used as the key of every event about the message."""
from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_message_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def now_ms() -> int:
    return int(time.time() * 1000)
