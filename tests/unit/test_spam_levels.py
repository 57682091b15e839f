"""processors.spam.levels: thresholds, weighted totals, concurrency, and retry vs pass on scanner failure."""
import asyncio

import pytest

from mailgate.core.config import SpamConfig
from processors.spam.levels import Classification, ScorerResult, classify, level_for
from processors.spam.scorers import ScannerUnavailable, Scorer

CFG = SpamConfig(low_threshold=3, medium_threshold=5, high_threshold=10)
PASS = CFG.model_copy(update={"on_scanner_failure": "pass"})
MSG = b"Subject: hi\r\n\r\nhello\r\n"


class Fake:
    """A scorer that answers `result` (a score, None, or an exception to raise) after `delay_s`."""

    def __init__(self, name: str, result: float | None | Exception, weight: float = 1.0, delay_s: float = 0):
        self.name, self.weight, self.result, self.delay_s = name, weight, result, delay_s
        self.calls: list[tuple[bytes, str]] = []
        self.cancelled = False

    async def score(self, message: bytes, client_address: str, context=None) -> float | None:
        self.calls.append((message, client_address))
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_fake_is_a_scorer():
    assert isinstance(Fake("f", 1.0), Scorer)


@pytest.mark.parametrize("total,level", [(-2, "none"), (0, "none"), (2.99, "none"), (3, "low"), (4.9, "low"),
                                         (5, "medium"), (9.99, "medium"), (10, "high"), (1000, "high")])
def test_level_for_thresholds_are_inclusive(total, level):
    assert level_for(total, CFG) == level


def test_equal_thresholds_give_the_highest_level():
    cfg = SpamConfig(low_threshold=5, medium_threshold=5, high_threshold=5)
    assert level_for(5, cfg) == "high" and level_for(4.9, cfg) == "none"


async def test_weighted_scores_are_summed():
    a, b = Fake("a", 4.0, weight=2.0), Fake("b", 1.5, weight=0.5)
    result = await classify([a, b], MSG, "192.0.2.1", CFG)
    assert result == Classification("medium", 8.75, (ScorerResult("a", 4.0, 2.0), ScorerResult("b", 1.5, 0.5)))
    assert a.calls == [(MSG, "192.0.2.1")] and b.calls == [(MSG, "192.0.2.1")]
    assert result.scored


async def test_scorers_run_concurrently():
    scorers = [Fake(f"s{i}", 1.0, delay_s=0.2) for i in range(5)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await classify(scorers, MSG, "192.0.2.1", CFG)
    assert loop.time() - started < 0.6
    assert result.total == 5.0 and result.level == "medium"


async def test_no_opinion_is_level_none_whatever_the_thresholds():
    cfg = SpamConfig(low_threshold=-5, medium_threshold=-4, high_threshold=-3)
    result = await classify([Fake("t", None)], MSG, "192.0.2.1", cfg)
    assert result.level == "none" and result.total == 0.0 and not result.scored
    assert (await classify([], MSG, "192.0.2.1", cfg)).level == "none"


async def test_none_opinion_adds_nothing():
    result = await classify([Fake("t", None), Fake("s", 3.5)], MSG, "192.0.2.1", CFG)
    assert result.level == "low" and result.total == 3.5
    assert result.results[0] == ScorerResult("t", None, 1.0)


async def test_retry_raises_and_cancels_the_other_scorers():
    slow = Fake("slow", 20.0, delay_s=10)
    with pytest.raises(ScannerUnavailable, match="down"):
        await classify([Fake("bad", ScannerUnavailable("spamd down")), slow], MSG, "192.0.2.1", CFG)
    assert slow.cancelled


async def test_pass_records_the_error_and_scores_with_the_rest():
    result = await classify([Fake("bad", ScannerUnavailable("spamd down")), Fake("ok", 6.0)], MSG, "192.0.2.1",
                            PASS)
    assert result.level == "medium" and result.total == 6.0
    assert result.results[0] == ScorerResult("bad", None, 1.0, "spamd down")
    assert result.results[1].error is None


async def test_pass_with_every_scanner_down_is_unscored():
    result = await classify([Fake("bad", ScannerUnavailable("x"))], MSG, "192.0.2.1", PASS)
    assert result.level == "none" and not result.scored and result.results[0].error == "x"


async def test_a_bug_in_a_scorer_propagates_even_with_pass():
    slow = Fake("slow", 1.0, delay_s=10)
    with pytest.raises(ZeroDivisionError):
        await classify([Fake("buggy", ZeroDivisionError()), slow], MSG, "192.0.2.1", PASS)
    assert slow.cancelled


def test_scanner_unavailable_is_retriable():
    assert ScannerUnavailable.retriable is True
