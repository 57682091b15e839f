"""A client cannot write into the operator's log: its bytes are escaped and cut, and a flood of one protocol warning
is summarised (mailgate/core/log_safety.py, on the handler every mailgate process logs through)."""
from __future__ import annotations

import logging

from mailgate.core.log_safety import BURST_LINES, MAX_ARG_CHARS, WINDOW_S, ClientTextFilter, printable


def test_control_characters_and_escape_sequences_are_escaped():
    assert printable("EHLO \x1b[2J\x00evil\r\nfake: line") == "EHLO \\x1b[2J\\x00evil\\x0d\\x0afake: line"
    assert printable("caf\u00e9 \u202e") == "caf\u00e9 \\u202e"  # letters stay; a bidi override does not
    assert printable("plain text") == "plain text"


def test_a_long_client_line_is_cut_and_says_how_much():
    out = printable("X" * 100_000)
    assert out.startswith("X" * MAX_ARG_CHARS) and out.endswith(f"…(+{100_000 - MAX_ARG_CHARS} chars)")


def _record(name: str, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_every_text_argument_of_a_record_is_made_printable():
    r = _record("mailgate.ingress", "reject sender=<%s> count=%d", "a\x1bb@x.test", 3)
    assert ClientTextFilter().filter(r) and r.getMessage() == "reject sender=<a\\x1bb@x.test> count=3"
    r = _record("mail.log", "%r unrecognised: %s", ("127.0.0.1", 5000), b"\x00\xff")
    assert ClientTextFilter().filter(r) and r.getMessage() == "('127.0.0.1', 5000) unrecognised: \\x00\\xff"


def test_a_flood_of_one_aiosmtpd_warning_is_summarised_per_window():
    now = [0.0]
    f = ClientTextFilter(clock=lambda: now[0])
    kept = [f.filter(_record("mail.log", "%r unrecognised: %s", ("127.0.0.1", 1), f"junk{i}")) for i in range(500)]
    assert kept.count(True) == BURST_LINES
    now[0] += WINDOW_S
    r = _record("mail.log", "%r unrecognised: %s", ("127.0.0.1", 1), "later")
    assert f.filter(r)
    assert r.getMessage().startswith(f"{500 - BURST_LINES} more lines like '%r unrecognised: %s' were left out")
    # mailgate's own lines are never dropped
    assert all(f.filter(_record("mailgate.ingress", "reject rcpt=<%s>", "x")) for _ in range(100))
