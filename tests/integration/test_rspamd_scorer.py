"""RspamdScorer against a real rspamd (Debian's package, loopback, minimal offline configuration): GTUBE is
rspamd's reject, a plain message scores 0, rspamd understood every part of the SMTP context we sent, and a wrong
URL or a stopped rspamd is ScannerUnavailable."""
from __future__ import annotations

import dataclasses
from typing import Iterator

import pytest

from mailgate.core.config import SpamConfig
from processors.spam.levels import classify
from processors.spam.scorers import RspamdScorer, ScannerUnavailable, SmtpContext
from tests.integration.test_spamd_scorer import HAM, SPAM
from tests.support.harness import free_port
from tests.support.rspamd import REJECT_SCORE, RSPAMD, Rspamd, running_rspamd

pytestmark = pytest.mark.skipif(RSPAMD is None, reason="rspamd is not installed (peer missing: rspamd)")

CTX = SmtpContext("203.0.113.5", "mx.example.com", "alice@example.com", ("bob@example.org", "carol@example.org"),
                  "alice", "m-ctx")


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    with running_rspamd(tmp_path_factory.mktemp("rspamd")) as server:
        yield server


async def test_gtube_is_rspamds_reject_and_a_plain_message_scores_nothing(rspamd):
    scorer = RspamdScorer(url=rspamd.url, timeout_s=30)
    spam = await scorer.check(SPAM, CTX)
    assert spam.action == "reject" and spam.score >= REJECT_SCORE and "GTUBE" in spam.symbols
    ham = await scorer.check(HAM, CTX)
    assert ham.action == "no action" and ham.score == 0.0


async def test_rspamd_understood_ip_helo_sender_recipients_user_and_queue_id(rspamd):
    ctx = dataclasses.replace(CTX, queue_id="m-ctx-1")
    reply = await RspamdScorer(url=rspamd.url, timeout_s=30).check(HAM, ctx)
    assert reply.symbols["MAILGATE_CONTEXT"] == (
        "ip=203.0.113.5", "helo=mx.example.com", "from=alice@example.com", "rcpt=bob@example.org",
        "rcpt=carol@example.org", "user=alice", "qid=m-ctx-1")
    [line] = rspamd.wait_scanned("m-ctx-1")
    assert "action: no action" in line and "MAILGATE_CONTEXT{ip=203.0.113.5;" in line


async def test_without_context_only_the_client_ip_is_sent(rspamd):
    reply = await RspamdScorer(url=rspamd.url, timeout_s=30).check(HAM, SmtpContext("198.51.100.7"))
    assert reply.symbols["MAILGATE_CONTEXT"] == ("ip=198.51.100.7", "helo=", "from=", "user=", "qid=")


async def test_classify_passes_the_context_and_gtube_is_high(rspamd):
    verdict = await classify([RspamdScorer(url=rspamd.url, timeout_s=30)], SPAM, CTX.client_address,
                             SpamConfig(enabled=True), CTX)
    assert verdict.level == "high" and verdict.total >= REJECT_SCORE


async def test_unknown_command_and_no_server_are_scanner_unavailable(rspamd):
    """rspamd answers an unknown command (here `/nothing-here/checkv2`) with HTTP 500."""
    with pytest.raises(ScannerUnavailable, match="HTTP 500"):
        await RspamdScorer(url=rspamd.url + "/nothing-here", timeout_s=30).check(HAM, CTX)
    with pytest.raises(ScannerUnavailable):
        await RspamdScorer(url=f"http://127.0.0.1:{free_port()}", timeout_s=2).score(HAM, "203.0.113.5")
