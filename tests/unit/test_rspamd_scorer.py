"""The rspamd request and reply as values: which /checkv2 headers carry the SMTP context, and which replies are a
score. The scorer against a real rspamd is tests/integration/test_rspamd_scorer.py."""
from __future__ import annotations

import pytest

from processors.spam.scorers import SmtpContext, parse_rspamd_reply, rspamd_headers


def test_every_part_of_the_smtp_context_is_one_rspamd_header():
    ctx = SmtpContext("203.0.113.5", "mx.sender.test", "alice@sender.test", ("bob@a.test", "carol@a.test"),
                      "alice", "m-1")
    assert rspamd_headers(ctx) == [(b"IP", b"203.0.113.5"), (b"Helo", b"mx.sender.test"),
                                   (b"From", b"alice@sender.test"), (b"Rcpt", b"bob@a.test"),
                                   (b"Rcpt", b"carol@a.test"), (b"User", b"alice"), (b"Queue-Id", b"m-1")]


def test_null_sender_is_sent_as_empty_path_and_unknown_parts_are_left_out():
    assert (b"From", b"<>") in rspamd_headers(SmtpContext("203.0.113.5", mail_from=""))
    assert rspamd_headers(SmtpContext("203.0.113.5")) == [(b"IP", b"203.0.113.5")]


def test_line_breaks_cannot_inject_a_header():
    assert rspamd_headers(SmtpContext("203.0.113.5", helo="x\r\nUser: admin")) == [
        (b"IP", b"203.0.113.5"), (b"Helo", b"xUser: admin")]


def test_utf8_addresses_are_sent_as_utf8():
    assert (b"Rcpt", "jörg@a.test".encode()) in rspamd_headers(SmtpContext("::1", rcpt_to=("jörg@a.test",)))


def test_reply_score_action_and_symbol_options():
    reply = parse_rspamd_reply({"score": 15.0, "action": "reject",
                                "symbols": {"GTUBE": {"score": 0.0}, "X": {"options": ["a", "b"]}}})
    assert reply.score == 15.0 and reply.action == "reject"
    assert reply.symbols == {"GTUBE": (), "X": ("a", "b")}


@pytest.mark.parametrize("reply", [{}, [], {"score": "many"}, {"score": None}, {"score": float("nan")},
                                   {"score": "inf"}])
def test_a_reply_without_a_finite_score_is_an_error(reply):
    with pytest.raises(ValueError):
        parse_rspamd_reply(reply)
