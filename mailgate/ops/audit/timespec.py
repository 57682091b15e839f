"""Times on the command line: `--since`, `--until` and `--until` of a suspension, as epoch milliseconds.

Reads: ISO 8601 (naive means UTC; `Z` allowed) or a duration (`90s`, `10m`, `2h`, `1.5d`). Emits: epoch ms — a
duration counts back from now for `parse_time` (an age) and forward for `parse_until` (a deadline). A value that is
neither is a `TimeSpecError` (a usage error: exit status 2).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from mailgate.core.ids import now_ms

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class TimeSpecError(ValueError):
    """A time that is neither ISO 8601 nor a duration like 10m."""


def _parse(text: str, now: int, direction: int) -> int:
    m = _DURATION.match(text)
    if m:
        return now + direction * int(float(m.group(1)) * _UNIT_S[m.group(2)] * 1000)
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeSpecError(f"not a time: {text!r} (use ISO 8601 like 2024-05-01T10:00Z, or a duration like "
                            f"10m, 2h)") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def parse_time(text: str, now: int | None = None) -> int:
    """Epoch ms for `text`: ISO 8601 or an age before now (`10m`, `2h`, `1.5d`)."""
    return _parse(text, now_ms() if now is None else now, -1)


def parse_until(text: str, now: int | None = None) -> int:
    """Epoch ms for `text`: ISO 8601 or a duration from now (`30m`, `2h`)."""
    return _parse(text, now_ms() if now is None else now, +1)
