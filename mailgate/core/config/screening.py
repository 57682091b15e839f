"""Configuration of the checks at the SMTP door (`ingress.pregreet`, `ingress.dnsbl`): postscreen's pre-greet test
and weighted DNS block and allow lists, with the syntax of one list entry (`DnsListSite.parse`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from mailgate.core.config.base import Strict
from mailgate.core.config.spam import DnsConfig

PregreetAction = Literal["off", "ignore", "enforce", "drop"]
"""off: no test (no teaser line, no wait); ignore: test, log and count, refuse nothing; enforce: the session goes on
but every RCPT is answered `550 5.5.1`; drop: `521 5.5.1` and the connection is closed (postscreen_greet_action)."""


class PregreetConfig(Strict):
    """Postscreen's pre-greet test: ingress sends the first line of a multi-line greeting (`220-<hostname> ESMTP`),
    waits `greet_wait_s`, then the last line (`220 <hostname> ...`); a client that speaks before the last line did
    not wait for its turn (a bot)."""

    action: PregreetAction = Field(
        "off", description="off, ignore (log and count only), enforce (550 5.5.1 at every RCPT) or drop (521 5.5.1 "
        "and close), as Postfix's postscreen_greet_action; each listener may set its own (`listeners[].pregreet`).")
    greet_wait_s: float = Field(6.0, gt=0, le=60, description="How long the greeting's first line waits for a client "
                                                              "that talks too early (postscreen_greet_wait).")
    pass_ttl_s: float = Field(86400, gt=0, description="A client that passed is not tested again (no wait) for "
                                                       "this long (postscreen_greet_ttl, 1 day).")
    cache_entries: int = Field(100_000, ge=1, description="Clients that passed, remembered per ingress process "
                                                          "(the oldest are forgotten first).")


@dataclass(frozen=True)
class DnsListSite:
    """One `zone[=filter][*weight]` entry of `ingress.dnsbl.sites` (postscreen_dnsbl_sites' syntax)."""

    zone: str
    weight: int
    filter: tuple[tuple[tuple[int, int], ...], ...] | None
    """Per octet of the answer (127.0.0.x), the allowed (low, high) ranges; None: any answer counts."""
    text: str

    _ENTRY = re.compile(r"^(?P<zone>[A-Za-z0-9_.-]+?)\.?(?:=(?P<filter>[0-9.\[\];]+))?(?:\*(?P<weight>-?\d+))?$")

    @classmethod
    def parse(cls, text: str) -> "DnsListSite":
        m = cls._ENTRY.match(text.strip())
        if m is None or "." not in m["zone"]:
            raise ValueError(f"{text!r}: expected zone[=d.d.d.d][*weight], e.g. zen.spamhaus.org=127.0.0.[2..11]*3")
        weight = int(m["weight"]) if m["weight"] is not None else 1
        return cls(m["zone"].lower(), weight, _parse_filter(text, m["filter"]) if m["filter"] else None, text.strip())

    def matches(self, answer: str) -> bool:
        """Does this A answer (dotted quad) count for this entry?"""
        if self.filter is None:
            return True
        try:
            octets = [int(x) for x in answer.split(".")]
        except ValueError:
            return False
        return len(octets) == 4 and all(any(lo <= o <= hi for lo, hi in ranges)
                                        for o, ranges in zip(octets, self.filter))


def _parse_filter(text: str, spec: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    """`127.0.0.[2..11;20]` → per octet, its (low, high) ranges."""
    parts = re.findall(r"\[[^\]]*\]|[^.\[\]]+", spec)
    if len(parts) != 4 or ".".join(parts) != spec:
        raise ValueError(f"{text!r}: the filter must be four octets d.d.d.d, each a number or [a;b..c]")
    out = []
    for part in parts:
        ranges = []
        for item in (part[1:-1].split(";") if part.startswith("[") else [part]):
            lo, dots, hi = item.partition("..")
            if not lo.isdigit() or (dots and not hi.isdigit()):
                raise ValueError(f"{text!r}: bad octet pattern {part!r}")
            low, high = int(lo), int(hi or lo)
            if not 0 <= low <= high <= 255:
                raise ValueError(f"{text!r}: octet range {item!r} is not within 0..255")
            ranges.append((low, high))
        out.append(tuple(ranges))
    return tuple(out)


class DnsblConfig(Strict):
    """Weighted DNS block lists and allow lists asked at connect (RFC 5782), postscreen's scoring: each list that
    lists the client adds its weight (negative for allow lists); a total at or over `threshold` is refused. Relay
    networks are not looked up; authenticated clients are exempt at RCPT."""

    sites: list[str] = Field(
        default_factory=list, description="Lists as zone[=filter][*weight] (postscreen_dnsbl_sites): "
        "`zen.spamhaus.org=127.0.0.[2..11]*3`, `list.dnswl.org=127.0.[0..255].[1..3]*-2`; no filter: any answer "
        "counts; no weight: 1. Several entries may name one zone (one query); each entry counts at most once.")
    threshold: int = Field(1, description="Total weight from which a client is refused (postscreen_dnsbl_threshold).")
    action: Literal["rcpt", "connect"] = Field(
        "rcpt", description="rcpt: every RCPT is answered `550 5.7.1 Service unavailable; client [ip] blocked using "
        "<zone>` (an authenticated client is not); connect: `521 5.7.1 ...` instead of the greeting, and the "
        "connection is closed (before any AUTH: not for submission ports).")
    timeout_s: float = Field(2.0, gt=0, le=30, description="Deadline for all the lists' answers together; a list "
                                                           "that has not answered by then counts as not listing "
                                                           "the client (postscreen_dnsbl_timeout).")
    min_ttl_s: float = Field(60, ge=0, description="Shortest time an answer is kept (postscreen_dnsbl_min_ttl).")
    max_ttl_s: float = Field(3600, gt=0, description="Longest time an answer is kept, whatever its TTL "
                                                     "(postscreen_dnsbl_max_ttl).")
    cache_entries: int = Field(100_000, ge=1, description="Answers (list, client) kept per ingress process.")
    safety_check_interval_s: float = Field(
        3600, gt=0, description="How often each list is asked for the RFC 5782 test address 127.0.0.1: a list that "
        "answers for it lists the world and is disabled (a warning says so) until it no longer does.")
    dns: DnsConfig = Field(default_factory=DnsConfig,
                           description="The resolver asked (its timeout_s per query; cache_entries unused).")

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: list[str]) -> list[str]:
        for text in v:
            DnsListSite.parse(text)
        return v

    def parsed_sites(self) -> list[DnsListSite]:
        return [DnsListSite.parse(t) for t in self.sites]
