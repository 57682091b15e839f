"""ingress.smtp_server and ingress.replies: raw addresses reach the policy; aiosmtpd's replies get enhanced codes."""
from __future__ import annotations

import pytest

from ingress.replies import standard_reply
from ingress.smtp_server import GatewaySMTP


@pytest.mark.parametrize("line, expected", [
    ("500 Command line too long", "500 5.5.2 Error: command line too long"),
    ("500 Line too long (see RFC5321 4.5.3.1.6)", "500 5.5.2 Error: text line too long (limit 1000 bytes)"),
    ("552 Error: Too much mail data", "552 5.3.4 Error: message size exceeds fixed limit"),
    ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
    ('500 Error: command "XYZZY" not recognized', "500 5.5.2 Error: command not recognized"),
    ("500 Error: (KeyError) 'secret'", "451 4.3.0 Error: local error in processing, try again later"),
    ("554 5.7.1 <a@b>: Relay access denied", "554 5.7.1 <a@b>: Relay access denied"),
    ("250-SIZE 1048576", "250-SIZE 1048576"),
    ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
])
def test_standard_reply(line, expected):
    assert standard_reply(line) == expected


@pytest.mark.parametrize("arg, expected", [
    ("<@a.test:user@b.test>", ("@a.test:user@b.test", "")),
    ('<"user@b.test"@a.test> SIZE=10', ('"user@b.test"@a.test', " SIZE=10")),
    ("<user@b.test@a.test>", ("user@b.test@a.test", "")),
    ("<>", ("<>", "")),
    ("user@b.test SIZE=1", ("user@b.test", "SIZE=1")),
    ("<user@b.test", (None, None)),
    ("<user@b.test>junk", (None, None)),
])
async def test_raw_address_is_what_the_policy_sees(arg, expected):
    smtp = GatewaySMTP(object(), max_errors=3)
    assert smtp._getaddr(arg) == expected


def test_ehlo_lines_add_pipelining_enhanced_status_codes_dsn_and_chunking_in_the_table_order():
    from ingress.replies import ehlo_lines
    got = ehlo_lines(["250-gw.test", "250-SIZE 100", "250-8BITMIME", "250-SMTPUTF8", "250-STARTTLS",
                      "250-AUTH LOGIN PLAIN", "250 HELP"])
    assert got == ["250-gw.test", "250-SIZE 100", "250-8BITMIME", "250-SMTPUTF8", "250-PIPELINING",
                   "250-ENHANCEDSTATUSCODES", "250-DSN", "250-CHUNKING", "250-STARTTLS", "250-AUTH LOGIN PLAIN", "250 HELP"]
    assert ehlo_lines(["250-gw.test", "250 HELP"]) == ["250-gw.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES",
                                                       "250-DSN", "250-CHUNKING", "250 HELP"]
