"""SpamdScorer against a real SpamAssassin spamd (offline: --local, Debian's stock rules), plus fake servers
for the failure modes a real spamd will not produce on demand."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from mailgate.core.config import SpamConfig
from processors.spam.levels import classify
from processors.spam.scorers import ScannerUnavailable, SpamdScorer
from tests.support.spamd import GTUBE, SPAMD, Spamd, running_spamd

pytestmark = pytest.mark.skipif(SPAMD is None, reason="SpamAssassin's spamd is not installed (peer missing: spamd)")

HAM = (b"Date: Wed, 26 Nov 2025 14:00:00 +0000\r\n"
       b"From: Alice Example <alice@example.com>\r\n"
       b"To: Bob Example <bob@example.org>\r\n"
       b"Subject: Lunch tomorrow\r\n"
       b"Message-ID: <20251126140000.abc@example.com>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=us-ascii\r\n"
       b"\r\n"
       b"Hi Bob,\r\n\r\nAre we still on for lunch tomorrow at noon? The usual place works for me.\r\n\r\n"
       b"Cheers,\r\nAlice\r\n")
SPAM = HAM.replace(b"Subject: Lunch tomorrow", b"Subject: Test") + GTUBE + b"\r\n"
CFG = SpamConfig(enabled=True)  # thresholds 3 / 5 / 10, on_scanner_failure "retry"


@pytest.fixture(scope="module")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spamd]:
    with running_spamd(tmp_path_factory.mktemp("spamd")) as server:
        yield server


@pytest.fixture
def own_spamd(tmp_path: Path) -> Iterator[Spamd]:
    """A spamd of the test's own, for tests that stop it."""
    with running_spamd(tmp_path) as server:
        yield server


def scorer_for(port: int, **kw) -> SpamdScorer:
    return SpamdScorer("127.0.0.1", port, timeout_s=kw.pop("timeout_s", 30), name="spamd", weight=1.0, **kw)


async def test_gtube_scores_1000_and_is_high(spamd: Spamd):
    scorer = scorer_for(spamd.port)
    reply = await scorer.check(SPAM)
    assert reply.is_spam and reply.score >= 1000 and reply.threshold == 5.0 and "GTUBE" in reply.symbols
    result = await classify([scorer], SPAM, "198.51.100.7", CFG)
    assert result.level == "high" and result.total >= 1000


async def test_plain_message_is_none(spamd: Spamd):
    scorer = scorer_for(spamd.port, user="mailgate")
    score = await scorer.score(HAM, "198.51.100.7")
    assert score is not None and score < CFG.low_threshold
    assert (await classify([scorer], HAM, "198.51.100.7", CFG)).level == "none"


async def test_large_message_is_scanned_by_its_head(spamd: Spamd):
    big = HAM + b"Filler line to push the rest past the scan limit.\r\n" * 100 + GTUBE + b"\r\n"
    assert await scorer_for(spamd.port, max_scan_bytes=2048).score(big, "") < CFG.low_threshold
    assert await scorer_for(spamd.port, max_scan_bytes=len(big)).score(big, "") >= 1000


async def test_stopped_spamd_is_unavailable(own_spamd: Spamd):
    scorer = scorer_for(own_spamd.port, timeout_s=5)
    assert await scorer.score(HAM, "") < CFG.low_threshold
    await asyncio.to_thread(own_spamd.stop)
    with pytest.raises(ScannerUnavailable, match=f"127.0.0.1:{own_spamd.port}"):
        await scorer.score(HAM, "")
    with pytest.raises(ScannerUnavailable):
        await classify([scorer], HAM, "", CFG)
    passed = await classify([scorer], HAM, "", CFG.model_copy(update={"on_scanner_failure": "pass"}))
    assert passed.level == "none" and passed.results[0].error


@contextlib.asynccontextmanager
async def fake_spamd(reply: bytes | None):
    """A server that reads the request and answers `reply`, or, when None, never answers."""
    done, handlers = asyncio.Event(), set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        await reader.read()
        if reply is not None:
            writer.write(reply)
        else:
            await done.wait()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        done.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers)


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SPAMD/1.0 76 Bad header line\r\n",
                                   b"SPAMD/1.1 0 EX_OK\r\n\r\n", b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n",
                                   b"SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 9 / 5\r\n\r\nGTUBE"])
async def test_bad_reply_is_unavailable(reply: bytes):
    async with fake_spamd(reply) as port:
        with pytest.raises(ScannerUnavailable):
            await scorer_for(port).score(HAM, "")


async def test_good_fake_reply_parses():
    async with fake_spamd(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.5 / 5.0\r\n\r\n") as port:
        assert await scorer_for(port).score(HAM, "") == -1.5


async def test_silent_spamd_times_out():
    async with fake_spamd(None) as port:
        with pytest.raises(ScannerUnavailable, match="no answer within 0.2s"):
            await scorer_for(port, timeout_s=0.2).score(HAM, "")
