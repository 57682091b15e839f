"""mailgate.mail.line_endings: the one bare CR/LF check and repair find and repair exactly what the RFC 5321 reading
does (a LF not after a CR, a CR not before a LF: the regular expression below), on every short mix."""
import itertools
import re

from mailgate.mail.line_endings import has_bare_line_ending, to_crlf

BARE = re.compile(rb"(?<!\r)\n|\r(?!\n)")


def test_agrees_with_the_regex_on_every_short_mix_of_cr_lf_and_text():
    for n in range(7):
        for combo in itertools.product((b"a", b"\r", b"\n"), repeat=n):
            data = b"".join(combo)
            assert has_bare_line_ending(data) == bool(BARE.search(data)), data
            assert to_crlf(data) == BARE.sub(b"\r\n", data), data
            assert not has_bare_line_ending(to_crlf(data)), data


def test_crlf_only_message_is_clean_and_one_bare_lf_deep_inside_is_found():
    body = b"Subject: x\r\n\r\n" + b"line of text\r\n" * 50_000
    assert not has_bare_line_ending(body)
    assert has_bare_line_ending(body[:300_000] + b"\n" + body[300_000:])
    assert has_bare_line_ending(body + b"\r")
