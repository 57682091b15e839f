"""egress.smtp_session.data_payload: what egress writes after DATA is what RFC 5321 asks for (CRLF line endings,
lines starting with "." stuffed, the final "." line), byte for byte what aiosmtplib's own `data()` would have sent,
for any body, including bare CR/LF and dots at every position."""
from __future__ import annotations

import re

from aiosmtplib.protocol import normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.smtp_session import data_payload


def aiosmtplib_payload(body: bytes) -> bytes:
    """aiosmtplib 5.1's execute_data_command, the reference."""
    return re.sub(rb"(?m)^\.", b"..", normalize_message_line_endings(body)) + b".\r\n"


def test_a_line_starting_with_a_dot_is_stuffed_and_the_body_ends_with_the_dot_line():
    body = b"Subject: t\r\n\r\n.hidden\r\n..two\r\nend.\r\n"
    assert b"".join(data_payload(body)) == b"Subject: t\r\n\r\n..hidden\r\n...two\r\nend.\r\n.\r\n"


def test_a_body_starting_with_a_dot_is_stuffed():
    assert b"".join(data_payload(b".\r\n")) == b"..\r\n.\r\n"


def test_bare_cr_and_lf_become_crlf():
    assert b"".join(data_payload(b"a\nb\rc\r\n.d")) == b"a\r\nb\r\nc\r\n..d\r\n.\r\n"


def test_a_large_body_is_written_without_a_copy_when_nothing_needs_changing():
    body = b"x" * 100_000 + b"\r\n"
    chunks = data_payload(body)
    assert chunks[0] is body and chunks[1:] == [b".\r\n"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"a", b" ", b"\r\n.\r\n", b"x" * 7]),
                max_size=40).map(b"".join))
def test_same_bytes_as_aiosmtplib_for_any_body(body):
    assert b"".join(data_payload(body)) == aiosmtplib_payload(body)
