"""Classify one message: run every scorer at once, sum the weighted scores, map the total to a spam level.

Reads: the scorers, the raw message, the SMTP client's address and `SpamConfig` (thresholds, on_scanner_failure).
Emits: a `Classification` (level, total, one `ScorerResult` per scorer), or `ScannerUnavailable` when a scanner
failed and `on_scanner_failure` is "retry" (the message waits and is classified again later).
With "pass", a failed scorer's result carries the error and adds nothing to the total.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Sequence

from mailgate.core.config import SpamConfig
from processors.spam.scorers import ScannerUnavailable, Scorer, SmtpContext

Level = Literal["none", "low", "medium", "high"]
LEVELS: tuple[Level, ...] = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class ScorerResult:
    """What one scorer said about the message."""

    name: str
    """The scorer's name (its kind unless configured)."""
    score: float | None
    """The unweighted score; None when the scorer had no opinion or failed."""
    weight: float
    """The multiplier applied to `score` in the total."""
    error: str | None = None
    """Why the scanner could not answer (on_scanner_failure "pass" only); None when it answered."""

    @property
    def weighted(self) -> float:
        """This result's share of the total (0 without a score)."""
        return 0.0 if self.score is None else self.score * self.weight


@dataclass(frozen=True)
class Classification:
    """A message's spam verdict."""

    level: Level
    """none below low_threshold or when no scorer had an opinion; else the highest threshold the total reached."""
    total: float
    """The sum of every weighted score (0.0 when no scorer had an opinion)."""
    results: tuple[ScorerResult, ...]
    """One result per scorer, in the scorers' order."""

    @property
    def scored(self) -> bool:
        """At least one scorer gave a score."""
        return any(r.score is not None for r in self.results)


def level_for(total: float, cfg: SpamConfig) -> Level:
    """The level of a total: the highest threshold it reaches (a threshold is inclusive), else "none"."""
    if total >= cfg.high_threshold:
        return "high"
    if total >= cfg.medium_threshold:
        return "medium"
    if total >= cfg.low_threshold:
        return "low"
    return "none"


async def _ask(scorer: Scorer, message: bytes, client_address: str, catch: bool,
               context: SmtpContext | None = None) -> ScorerResult:
    try:
        score = await scorer.score(message, client_address, context=context)
    except ScannerUnavailable as err:
        if not catch:
            raise
        return ScorerResult(scorer.name, None, scorer.weight, str(err) or type(err).__name__)
    return ScorerResult(scorer.name, score, scorer.weight)


async def classify(scorers: Sequence[Scorer], message: bytes, client_address: str,
                   cfg: SpamConfig, context: SmtpContext | None = None) -> Classification:
    """Ask every scorer concurrently and classify. With on_scanner_failure "retry" the first ScannerUnavailable
    cancels the other scorers and propagates; other exceptions (bugs) always propagate."""
    catch = cfg.on_scanner_failure == "pass"
    tasks = [asyncio.ensure_future(_ask(s, message, client_address, catch, context)) for s in scorers]
    try:
        results = tuple(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    opinions = [r for r in results if r.score is not None]
    total = sum(r.weighted for r in opinions)
    level = level_for(total, cfg) if opinions else "none"
    return Classification(level, float(total), results)
