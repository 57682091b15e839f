"""Domain verification of inbound gateways: which gateway accepts a recipient's domain, by its configured lists or
(`domain_verification.mode: web_service`, SmarterMail gateway mode) by the domain list the SmarterMail server
reports, cached per gateway in each process. Ingress's RCPT check and the processor's re-check both decide here.

Reads: the gateways' `domain_verification`, and `GET /api/v1/settings/sysadmin/domain-names` through a `UserDirectory`.
Emits: `DomainDecision` values (accepted or not, and from which source), and counters for metrics.

The list is cached for the gateway's `smartermail.cache_ttl_s` (10 minutes, the same as user answers); a lookup in
the last `REFRESH_AHEAD_FRACTION` of that time answers from the cached list and starts one refresh in the background,
so a busy gateway never waits for the server. Concurrent fetches are one request (single flight). When the server
cannot be reached the last list fetched is used (stale-if-error) for up to `stale_ttl_s`; after a failed fetch the
server is asked again at most every `retry_after_s` (30 s, or the TTL if shorter). With no list ever fetched,
`when_never_fetched` decides (451, or the lists alone). `purge` (from `mailgate cache purge`, for all or for any
domain) drops the list, so the next lookup fetches.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, TypedDict

from mailgate.core.config import InboundGateway
from mailgate.core.ids import now_ms
from mailgate.mail.directory.base import (DirectoryAnswerUnrecognised, DirectoryUnavailable, UserDirectory,
                                           shared_result)

log = logging.getLogger("mailgate.directory.domains")

REFRESH_AHEAD_FRACTION = 0.2
"""A lookup in the last fifth of the TTL (the last 2 minutes of 10) refreshes the list in the background."""

LIST, WEB_SERVICE = "list", "web_service"
"""The sources of a domain decision, as events name them: the configured lists, or the SmarterMail server's list."""

ACCEPTED, REFUSED, UNAVAILABLE = "accepted", "refused", "unavailable"
"""Domain decisions as events name them."""


@dataclass(frozen=True, slots=True)
class DomainList:
    names: frozenset[str]
    fetched_at: float
    """When it was fetched, on the cache's clock."""
    fetched_at_ms: int
    """When it was fetched (UTC, milliseconds), for events."""


@dataclass(frozen=True, slots=True)
class ListAnswer:
    """Whether a domain is in the server's list."""

    listed: bool | None
    """None: no list is known (never fetched, or purged, and the server cannot be reached)."""
    cached: bool
    fetched_at_ms: int | None = None
    stale: bool = False
    """The server could not be reached and this is the last list fetched, older than the TTL."""


@dataclass(frozen=True, slots=True)
class DomainDecision:
    """Whether a gateway accepts a domain, and what decided it."""

    accepted: bool | None
    """None: it cannot tell now (the caller tempfails)."""
    source: str
    """list (the configured lists) or web_service (the SmarterMail server's domain list)."""
    fetched_at_ms: int | None = None
    """web_service: when the list that decided was fetched."""
    stale: bool = False
    """web_service: the last known list, used because the server could not be reached."""
    cached: bool = False
    """web_service: the list came from the cache rather than from a fetch made for this decision."""

    @property
    def outcome(self) -> str:
        return ACCEPTED if self.accepted else REFUSED if self.accepted is False else UNAVAILABLE


class DomainFields(TypedDict, total=False):
    """The domain decision as fields of MessageReceived and RecipientRejected."""

    domain_decision: str | None
    domain_source: str | None
    domain_list_fetched_at: int | None
    domain_list_stale: bool


def domain_fields(domain: DomainDecision | None) -> DomainFields:
    """`domain` as event fields; none (the schema defaults) when no inbound domain check was made."""
    if domain is None:
        return {}
    return {"domain_decision": domain.outcome, "domain_source": domain.source,
            "domain_list_fetched_at": domain.fetched_at_ms, "domain_list_stale": domain.stale}


class CachedDomainList:
    """The domain list of one gateway's SmarterMail server, cached; owns the directory (see `aclose`)."""

    def __init__(self, directory: UserDirectory, ttl_s: float = 600, *, stale_ttl_s: float = 86_400,
                 retry_after_s: float = 30, clock: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = now_ms) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.stale_ttl_s = max(stale_ttl_s, ttl_s)
        self.retry_after_s = min(retry_after_s, ttl_s)
        self._clock = clock
        self._wall_ms = wall_ms
        self._list: DomainList | None = None
        self._retry_at = 0.0
        self._inflight: asyncio.Task[DomainList] | None = None
        self._generation = 0  # bumped by purge: a fetch begun before it is not kept
        self._tasks: set[asyncio.Task[DomainList]] = set()
        self.hits = 0
        """Lookups answered from a fresh list."""
        self.misses = 0
        """Lookups with no fresh list (they waited for a fetch, or took a stale or no answer)."""
        self.calls = 0
        """Fetches of the list from the server (background refreshes included)."""
        self.stale_answers = 0
        """Lookups answered from the last known list because the server could not be reached."""

    async def contains(self, domain: str) -> ListAnswer:
        """Whether the server lists `domain`; never raises `DirectoryUnavailable`."""
        domain = domain.strip().lower().rstrip(".")
        now = self._clock()
        current = self._list
        if current is not None and now - current.fetched_at < self.ttl_s:
            self.hits += 1
            if now - current.fetched_at >= self.ttl_s * (1 - REFRESH_AHEAD_FRACTION) and self._inflight is None:
                self._fetch()  # refresh ahead, in the background
            return ListAnswer(domain in current.names, cached=True, fetched_at_ms=current.fetched_at_ms)
        self.misses += 1
        if now >= self._retry_at:
            try:
                fetched = await shared_result(self._inflight or self._fetch())
                return ListAnswer(domain in fetched.names, cached=False, fetched_at_ms=fetched.fetched_at_ms)
            except DirectoryUnavailable as err:
                self._retry_at = self._clock() + self.retry_after_s
                if isinstance(err, DirectoryAnswerUnrecognised):
                    log.warning("domain list: %s", err)
        current = self._list
        if current is None or self._clock() - current.fetched_at >= self.stale_ttl_s:
            return ListAnswer(None, cached=False)
        self.stale_answers += 1
        return ListAnswer(domain in current.names, cached=True, fetched_at_ms=current.fetched_at_ms, stale=True)

    def _fetch(self) -> asyncio.Task[DomainList]:
        task = asyncio.create_task(self._get(self._generation), name="domain list fetch")
        self._inflight = task
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def _get(self, generation: int) -> DomainList:
        self.calls += 1
        names = await self.directory.domain_names()
        fetched = DomainList(frozenset(names), self._clock(), self._wall_ms())
        if generation == self._generation:  # not purged meanwhile
            self._list = fetched
        return fetched

    def _finished(self, task: asyncio.Task[DomainList]) -> None:
        self._tasks.discard(task)
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.info("domain list fetch failed: %s", task.exception())

    def purge(self, target: str | None = None) -> int:
        """Forget the list for a purge of everything (None) or of any domain (the domain may be new on the server);
        an address's purge leaves it. Returns 1 if a list was forgotten, else 0."""
        if target is not None and "@" in target:
            return 0
        known = self._list is not None
        self._list, self._inflight, self._retry_at = None, None, 0.0
        self._generation += 1
        return int(known)

    async def aclose(self) -> None:
        """Cancel fetches in flight and close the directory."""
        tasks = list(self._tasks)
        self._inflight = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.directory.aclose()



def uses_web_service_domains(gw: InboundGateway) -> bool:
    """This gateway accepts the domains its SmarterMail server reports."""
    return gw.status == "enabled" and gw.domain_verification.mode == "web_service" and gw.smartermail.enabled


async def decide_domain(gw: InboundGateway, domain: str,
                        lists: Mapping[str, CachedDomainList]) -> DomainDecision:
    """Whether `gw` accepts mail for `domain`: the configured lists first (excluded_domains refuse, domains accept),
    then, for web_service, the server's cached list; with no list ever fetched, `when_never_fetched`."""
    dv = gw.domain_verification
    domain = domain.strip().lower().rstrip(".")
    if dv.mode != "web_service":
        return DomainDecision(dv.accepts(domain), LIST)
    if domain in dv.excluded_domains:
        return DomainDecision(False, LIST)
    if domain in dv.domains:
        return DomainDecision(True, LIST)
    cache = lists.get(gw.name)
    answer = await cache.contains(domain) if cache is not None else ListAnswer(None, cached=False)
    if answer.listed is None:
        if dv.when_never_fetched == "configured_lists":
            return DomainDecision(False, LIST)
        return DomainDecision(None, WEB_SERVICE)
    return DomainDecision(answer.listed, WEB_SERVICE, answer.fetched_at_ms, answer.stale, answer.cached)


async def find_inbound_gateway(gateways: Iterable[InboundGateway], domain: str,
                               lists: Mapping[str, CachedDomainList]
                               ) -> tuple[InboundGateway | None, DomainDecision | None]:
    """The first enabled gateway that accepts `domain`, with its decision; else (None, why not): a gateway that
    cannot tell now (tempfail) before a web_service refusal before a list refusal (None when no gateway is
    enabled)."""
    undecided: DomainDecision | None = None
    refused: DomainDecision | None = None
    for gw in gateways:
        if gw.status != "enabled":
            continue
        d = await decide_domain(gw, domain, lists)
        if d.accepted:
            return gw, d
        if d.accepted is None:
            undecided = undecided or d
        elif refused is None or (refused.source == LIST and d.source == WEB_SERVICE):
            refused = d
    return None, undecided or refused
