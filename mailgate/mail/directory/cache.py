"""Cached recipient verification: one directory lookup per address per TTL, and last-known answers for outages.

Reads: a `UserDirectory`. Emits: `Verification` values, and hit/miss/call counters for metrics.

- Yes and no answers are both kept for `ttl_s` (SmarterMail's gateway documents 10 minutes).
- Concurrent lookups of one address share a single directory request (single flight).
- Every answer is also remembered for `stale_ttl_s` (bounded, LRU); when the directory is unavailable the last known
  answer is given with `stale=True`, and without one the answer is `exists=None` (the caller defers with a 4xx).
- Cache keys are the whole address lower-cased: the domain part is case-insensitive by RFC 5321, and mail servers
  this fronts (SmarterMail) treat local parts case-insensitively too. The directory is asked with the local part as
  given and the domain lower-cased; whichever spelling asks first answers for all spellings during the TTL.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from cachetools import TTLCache

from mailgate.mail.directory.base import (DirectoryAnswerUnrecognised, DirectoryUnavailable, UserDirectory,
                                           shared_result)


@dataclass(frozen=True, slots=True)
class Verification:
    """The answer to "does this recipient exist"."""

    exists: bool | None
    """True / False; None when the directory could not answer and nothing was known about the address."""
    cached: bool
    """The answer came from the cache rather than from a directory request made for this call."""
    stale: bool = False
    """The directory was unavailable and this is the last known answer, older than the TTL."""
    unrecognised: bool = False
    """exists is None because the directory answered something we do not understand (not because it was down)."""


def _normalize(address: str) -> tuple[str, str]:
    """(cache key, address to ask the directory): domain lower-cased and without a trailing dot; key all lower."""
    local, at, domain = address.strip().rpartition("@")
    asked = f"{local}@{domain.lower().rstrip('.')}" if at else address.strip()
    return asked.lower(), asked



class CachedDirectory:
    """Answers `verify(address)` from a TTL cache in front of a `UserDirectory`; owns the directory (see `aclose`)."""

    def __init__(self, directory: UserDirectory, ttl_s: float = 600, maxsize: int = 100_000,
                 clock: Callable[[], float] = time.monotonic, *, stale_ttl_s: float = 86_400,
                 stale_maxsize: int | None = None) -> None:
        self.directory = directory
        self._fresh: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=ttl_s, timer=clock)
        self._last_known: TTLCache[str, bool] = TTLCache(maxsize=stale_maxsize or maxsize,
                                                         ttl=max(stale_ttl_s, ttl_s), timer=clock)
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._tasks: set[asyncio.Task[bool]] = set()  # every lookup running, including purged ones
        self.hits = 0
        """verify() calls answered from a fresh cache entry."""
        self.misses = 0
        """verify() calls with no fresh entry (they waited for a directory request, their own or a shared one)."""
        self.calls = 0
        """Requests made to the directory."""
        self.stale_answers = 0
        """verify() calls answered from a last-known entry because the directory was unavailable."""

    async def verify(self, address: str) -> Verification:
        """Whether `address` exists, from the cache or the directory; never raises `DirectoryUnavailable`."""
        key, asked = _normalize(address)
        exists = self._fresh.get(key)
        if exists is not None:
            self.hits += 1
            return Verification(exists, cached=True)
        self.misses += 1
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._lookup(key, asked), name=f"directory lookup {key}")
            self._inflight[key] = task
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._finished(key, t))
        try:
            exists = await shared_result(task)
        except DirectoryUnavailable as err:
            last = self._last_known.get(key)
            if last is None:
                return Verification(None, cached=False, unrecognised=isinstance(err, DirectoryAnswerUnrecognised))
            self.stale_answers += 1
            return Verification(last, cached=True, stale=True)
        return Verification(exists, cached=False)

    async def _lookup(self, key: str, asked: str) -> bool:
        self.calls += 1
        exists = await self.directory.user_exists(asked)
        if self._inflight.get(key) is asyncio.current_task():  # not purged meanwhile
            self._fresh[key] = self._last_known[key] = exists
        return exists

    def _finished(self, key: str, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so a lookup nobody awaits any more is not logged as unhandled

    def purge(self, target: str | None = None) -> int:
        """Forget answers: all (None), one address (with @), or every address of a domain (without @).

        Returns how many addresses were forgotten. A lookup in flight for a forgotten address still answers its
        waiters but is not cached; the next verify() asks the directory again.
        """
        if target is None:
            keys = set(self._fresh) | set(self._last_known) | set(self._inflight)
        elif "@" in target:
            keys = {_normalize(target)[0]}
        else:
            suffix = "@" + target.strip().lower().rstrip(".")
            keys = {k for k in (*self._fresh, *self._last_known, *self._inflight) if k.endswith(suffix)}
        dropped = 0
        for key in keys:
            known = key in self._fresh or key in self._last_known
            self._fresh.pop(key, None)
            self._last_known.pop(key, None)
            self._inflight.pop(key, None)
            dropped += known
        return dropped

    async def aclose(self) -> None:
        """Cancel lookups in flight and close the directory."""
        tasks = list(self._tasks)
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.directory.aclose()
