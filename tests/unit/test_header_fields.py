"""Message-ID and Subject as ingress records them in MessageReceived: unfolded, from the header block only."""
from __future__ import annotations

from mailgate.mail.header_fields import header_value

MSG = (b"Received: from x\r\nSubject: a long\r\n\tfolded subject\r\nmessage-id: <abc@example.test>\r\n\r\n"
       b"Subject: not a header\r\n")


def test_header_values_are_unfolded_and_case_insensitive():
    assert header_value(MSG, "Subject") == "a long folded subject"
    assert header_value(MSG, "Message-ID") == "<abc@example.test>"


def test_the_body_is_not_searched_and_absent_fields_are_none():
    assert header_value(b"From: a@b\r\n\r\nMessage-ID: <x@y>\r\n", "Message-ID") is None
    assert header_value(b"Subject: " + b"x" * 500 + b"\r\n\r\n", "Subject") == "x" * 200
