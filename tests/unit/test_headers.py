"""mailgate.mail.headers: the one header_block (RFC 5322 header section), and edits that touch only the edited
header lines, never other bytes."""
import email
import email.policy

import pytest

from mailgate.mail.headers import add_header, header_block, header_values, prefix_subject, set_header

DKIM = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n"
        b"\th=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        b"\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==\r\n")
HEAD = (b"Received: from a.example.com (a.example.com [198.51.100.7])\r\n"
        b"\tby mx.example.org with ESMTP id 1; Wed, 26 Nov 2025 14:00:00 +0000\r\n"
        + DKIM +
        b"From:  Alice <alice@example.com>\r\n"
        b"To: bob@example.org\r\n"
        b"Subject: Quarterly\r\n"
        b" report  with\tfolding\r\n"
        b"X-Odd-Spacing :keep   me\r\n"
        b"Date: Wed, 26 Nov 2025 14:00:00 +0000\r\n")
BODY = b"\r\nLine one\r\nSubject: not a header, body text\r\n\r\n.trailing  spaces  \r\n"
MSG = HEAD + BODY


def without(msg: bytes, *lines: bytes) -> bytes:
    for line in lines:
        assert msg.count(line) == 1, line
        msg = msg.replace(line, b"", 1)
    return msg


def test_header_block_stops_at_the_blank_line():
    assert header_block(MSG) == HEAD
    assert header_block(b"A: 1\r\nB: 2") == b"A: 1\r\nB: 2"
    assert header_block(b"\r\nbody only\r\n") == b""


def test_header_block_edges():
    """RFC 5322 2.1: the header section ends at the first empty line, whatever the line ends."""
    assert header_block(b"A: 1\r\nB: 2\r\n") == b"A: 1\r\nB: 2\r\n"  # no blank line: all header
    assert header_block(b"\r\nA: 1\r\n\r\nbody") == b""  # blank line first: no header at all
    assert header_block(b"\nA: 1\n") == b""
    assert header_block(b"A: 1\nB: 2\n\nbody\nC: 3\n") == b"A: 1\nB: 2\n"  # LF-only line ends
    assert header_block(b"A: 1\n x\nB: 2\n\n") == b"A: 1\n x\nB: 2\n"  # folded field kept whole
    assert header_block(b"A: 1\r\n\r\nB: 2\r\n\r\n") == b"A: 1\r\n"  # the first empty line, not the last
    assert header_block(b"") == b""


def test_add_header_goes_on_top_and_nothing_else_changes():
    out = add_header(MSG, "X-Spam-Flag", "YES")
    assert out == b"X-Spam-Flag: YES\r\n" + MSG


def test_add_header_keeps_bare_lf_messages_bare_lf():
    msg = b"Subject: hi\n\nbody\n"
    assert add_header(msg, "X-A", "1") == b"X-A: 1\n" + msg


def test_prefix_folded_subject_changes_only_the_subject_field():
    out = prefix_subject(MSG, "[SPAM]")
    assert b"Subject: [SPAM] Quarterly\r\n report  with\tfolding\r\n" in out
    assert without(out, b"Subject: [SPAM] Quarterly\r\n") == without(MSG, b"Subject: Quarterly\r\n")
    assert out.endswith(BODY) and out.startswith(HEAD.split(b"Subject:")[0])
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert parsed["Subject"] == "[SPAM] Quarterly report  with\tfolding"


def test_prefix_subject_whose_value_starts_on_a_continuation_line():
    msg = b"From: a@example.com\r\nSubject:\r\n Hello\r\n\r\nbody\r\n"
    assert prefix_subject(msg, "[SPAM]") == b"From: a@example.com\r\nSubject: [SPAM]\r\n Hello\r\n\r\nbody\r\n"


def test_prefix_subject_without_space_after_colon():
    assert prefix_subject(b"Subject:Hello\r\n\r\n", "[SPAM]") == b"Subject: [SPAM] Hello\r\n\r\n"


def test_prefix_subject_is_not_doubled():
    once = prefix_subject(MSG, "[SPAM]")
    assert prefix_subject(once, "[SPAM]") == once


def test_prefix_subject_only_the_first_subject():
    msg = b"Subject: one\r\nSubject: two\r\n\r\nb\r\n"
    assert prefix_subject(msg, "[S]") == b"Subject: [S] one\r\nSubject: two\r\n\r\nb\r\n"


def test_missing_subject_is_added_after_the_last_header():
    msg = b"From: a@example.com\r\nTo: b@example.org\r\n\r\nSubject: body\r\n"
    assert prefix_subject(msg, "[SPAM]") == (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: [SPAM]\r\n"
                                              b"\r\nSubject: body\r\n")
    assert prefix_subject(b"From: a@example.com", "[S]") == b"From: a@example.com\r\nSubject: [S]\r\n"


def test_non_ascii_prefix_is_encoded():
    out = prefix_subject(b"Subject: hi\r\n\r\n", "[Verdächtig]")
    assert out.isascii()
    assert str(email.message_from_bytes(out, policy=email.policy.default)["Subject"]) == "[Verdächtig] hi"


def test_set_header_rewrites_first_in_place_and_drops_the_rest():
    msg = b"A: 1\r\nX-Spam-Score: 99\r\nB: 2\r\nx-spam-score: 98\r\n folded\r\nC: 3\r\n\r\nX-Spam-Score: body\r\n"
    assert set_header(msg, "X-Spam-Score", "1.5") == (b"A: 1\r\nX-Spam-Score: 1.5\r\nB: 2\r\nC: 3\r\n"
                                                     b"\r\nX-Spam-Score: body\r\n")


def test_set_header_adds_on_top_when_absent():
    assert set_header(MSG, "X-Spam-Level", "***") == b"X-Spam-Level: ***\r\n" + MSG


def test_header_values_unfolds_and_ignores_the_body():
    assert header_values(MSG, "subject") == ["Quarterly report  with\tfolding"]
    assert header_values(MSG, "X-Odd-Spacing") == ["keep   me"]
    assert header_values(MSG, "X-Missing") == []


@pytest.mark.parametrize("value", ["x\r\nBcc: victim@example.com", "x\nBcc: v", "x\rBcc: v", "a\0b"])
def test_header_injection_is_refused(value):
    with pytest.raises(ValueError):
        add_header(MSG, "X-Note", value)
    with pytest.raises(ValueError):
        set_header(MSG, "X-Note", value)
    with pytest.raises(ValueError):
        prefix_subject(MSG, value)


@pytest.mark.parametrize("name", ["", "X Note", "X:Note", "X-Nöte", "X-Note\r\n"])
def test_bad_header_names_are_refused(name):
    with pytest.raises(ValueError):
        add_header(MSG, name, "v")
