"""Every SMTP reply ingress gives for a policy decision, in one table: verdict → `code enhanced-code text`.

Hooks return a Verdict; only this module turns it into text. Nothing from an exception reaches the wire.
"""
from __future__ import annotations

import enum
import re

from mailgate.mail import pipeline_replies as replies


class Verdict(enum.Enum):
    OK = (250, "2.1.5", "Ok")
    SENDER_OK = (250, "2.1.0", "Ok")
    QUEUED = (250, "2.0.0", "Ok: queued as {id}")
    RELAY_DENIED = (554, "5.7.1", "<{addr}>: Relay access denied")
    BAD_ADDRESS = (553, "5.1.3", "<{addr}>: Address rejected: {why}")
    BAD_SENDER = (553, "5.1.7", "<{addr}>: Sender address rejected: {why}")
    DOMAIN_NOT_ACCEPTED = (554, "5.7.1", "<{addr}>: Recipient address rejected: domain not accepted here")
    USER_UNKNOWN = (replies.USER_UNKNOWN.code, replies.USER_UNKNOWN.enhanced_code,
                    "<{addr}>: " + replies.USER_UNKNOWN.text)  # the reply the processor's DSN reports too
    DIRECTORY_UNAVAILABLE = (451, "4.4.3", "<{addr}>: Recipient address verification unavailable, try again later")
    DOMAIN_LIST_UNAVAILABLE = (451, "4.4.3", "<{addr}>: Recipient domain verification unavailable, try again later")
    PRIMARY_UP = (451, "4.7.1", "<{addr}>: Backup MX: please deliver to the primary server")
    TOO_MANY_RECIPIENTS = (452, "4.5.3", "Error: too many recipients")
    MIXED_DIRECTION = (452, "4.5.3", "<{addr}>: Recipients for different destinations: send them in another "
                                    "transaction")
    MESSAGE_TOO_BIG = (552, "5.3.4", "Error: message size exceeds fixed limit")
    BARE_LF = (550, "5.5.2", "Error: bare <LF> received; lines must end with <CR><LF>")
    QUEUE_UNAVAILABLE = (451, "4.3.0", "Error: queue file write error, try again later")
    VIRUS_FOUND = (554, "5.7.1", "Message content rejected: {what}")  # scan_at_data; pipeline_replies.content_rejected
    VIRUS_SCANNER_UNAVAILABLE = (451, "4.3.0", "Error: virus scanner unavailable, try again later")
    LOCAL_ERROR = (451, "4.3.0", "Error: local error in processing, try again later")
    IDLE_TIMEOUT = (421, "4.4.2", "{host} Error: timeout exceeded")
    TOO_MANY_ERRORS = (421, "4.7.0", "{host} Error: too many errors")
    TOO_MANY_CONNECTIONS = (421, "4.7.0", "{host} Error: too many connections from {client}")
    MESSAGE_RATE = (421, "4.7.0", "{host} Error: too many messages from {client}")
    MESSAGES_PER_CONNECTION = (421, "4.7.0", "{host} Error: too many messages in this connection, reconnect")
    SESSION_TIME = (421, "4.7.0", "{host} Error: session time limit exceeded")
    AUTH_OK = (235, "2.7.0", "Authentication successful")
    AUTH_FAILED = (535, "5.7.8", "Error: authentication failed")
    AUTH_UNAVAILABLE = (454, "4.7.0", "Temporary authentication failure, try again later")
    AUTH_TOO_MANY_FAILURES = (421, "4.7.0", "{host} Error: too many failed logins, try again later")
    SENDER_NOT_OWNED = (553, "5.7.1", "<{addr}>: Sender address rejected: not owned by user {user}")
    PREGREET_DROP = (521, "5.5.1", "Protocol error")  # postscreen's words for a client that spoke too early
    PREGREET_ENFORCE = (550, "5.5.1", "Protocol error")
    DNSBL_CONNECT = (521, "5.7.1", "Service unavailable; client [{client}] blocked using {zone}")
    DNSBL_RCPT = (550, "5.7.1", "Service unavailable; client [{client}] blocked using {zone}")
    ACCESS_CLIENT = (554, "5.7.1", "<[{client}]>: Client host rejected: Access denied")  # Postfix's access words
    ACCESS_SENDER = (554, "5.7.1", "<{sender}>: Sender address rejected: Access denied")
    ACCESS_HELO = (554, "5.7.1", "<{helo}>: Helo command rejected: Access denied")
    PIPELINING_VIOLATION = (554, "5.5.0", "Error: SMTP protocol synchronization: message text sent before the "
                                          "354 reply")
    BDAT_CHUNK = (250, "2.0.0", "Ok: {size} octets received")
    BDAT_SYNTAX = (501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
    DATA_AFTER_BDAT = (503, "5.5.1", "Error: DATA not allowed in a BDAT transaction")
    DSN_BAD_RET = (501, "5.5.4", "Error: bad RET parameter syntax (RET=FULL or RET=HDRS)")
    DSN_BAD_ENVID = (501, "5.5.4", "Error: bad ENVID parameter syntax")
    DSN_ENVID_TOO_LONG = (501, "5.5.4", "Error: ENVID parameter too long (at most 100 characters)")
    DSN_BAD_NOTIFY = (501, "5.5.4", "Error: bad NOTIFY parameter syntax (NEVER, or SUCCESS, FAILURE, DELAY)")
    DSN_NOTIFY_NEVER_COMBINED = (501, "5.5.4", "Error: NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or "
                                               "DELAY")
    DSN_BAD_ORCPT = (501, "5.5.4", "Error: bad ORCPT parameter syntax (addr-type;xtext)")
    DSN_ORCPT_TOO_LONG = (501, "5.5.4", "Error: ORCPT parameter too long (at most 500 characters)")
    DSN_DUPLICATE = (501, "5.5.4", "Error: duplicate {param} parameter")

    def reply(self, **fields: str) -> str:
        code, enhanced, text = self.value
        return f"{code} {enhanced} {text.format(**fields)}"

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def enhanced(self) -> str:
        return self.value[1]


EHLO_KEYWORDS = ("SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING", "STARTTLS",
                 "AUTH", "HELP")
"""The EHLO keywords ingress offers, in the order it offers them (Postfix's order). aiosmtpd makes SIZE, 8BITMIME,
SMTPUTF8, STARTTLS (when TLS is configured), AUTH (on a listener with AUTH) and HELP; PIPELINING (RFC 2920),
ENHANCEDSTATUSCODES (RFC 2034: every reply carries an enhanced code), DSN (RFC 3461: ingress.esmtp_params) and
CHUNKING (RFC 3030 BDAT: ingress.bdat) are ingress's, on every listener. A keyword aiosmtpd adds that is not listed
here comes after the listed ones, before HELP."""

INGRESS_KEYWORDS = ("PIPELINING", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING")
"""The keywords ingress adds to aiosmtpd's."""


def ehlo_lines(responses: list[str]) -> list[str]:
    """aiosmtpd's EHLO reply (`250-<host>` first, `250 HELP` last) with ingress's keywords, in EHLO_KEYWORDS order."""
    greeting, offered = responses[0], [r[4:] for r in responses[1:]]
    offered += [k for k in INGRESS_KEYWORDS if k not in offered]
    rank = {k: i for i, k in enumerate(EHLO_KEYWORDS)}
    ordered = sorted(offered, key=lambda line: (line == "HELP", rank.get(line.split()[0], len(rank) - 1)))
    return [greeting] + [f"250-{k}" for k in ordered[:-1]] + [f"250 {ordered[-1]}"]


# aiosmtpd's own replies (protocol errors it answers before a hook runs), given enhanced codes (RFC 3463) and
# house wording. Exact lines first, then prefixes; anything else passes unchanged (EHLO lines, 220, 334, 354).
_AIOSMTPD_EXACT = {
    "500 Command line too long": "500 5.5.2 Error: command line too long",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Error: text line too long (limit 1000 bytes)",
    "552 Error: Too much mail data": Verdict.MESSAGE_TOO_BIG.reply(),
    "552 Error: message size exceeds fixed maximum message size": Verdict.MESSAGE_TOO_BIG.reply(),
    "500 Error: bad syntax": "500 5.5.2 Error: bad syntax",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "503 Error: send HELO first": "503 5.5.1 Error: send HELO/EHLO first",
    "503 Error: send EHLO first": "503 5.5.1 Error: send EHLO first",
    "554 Command refused due to lack of security": "554 5.7.0 Error: command refused due to lack of security",
    "454 TLS not available": "454 4.7.0 TLS not available",
    "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
    "250 OK": "250 2.0.0 Ok",
    "221 Bye": "221 2.0.0 Bye",
    "503 Already authenticated": "503 5.5.1 Error: already authenticated",
    "501 Not enough value": "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    "501 Too many values": "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
}
_AIOSMTPD_PREFIX = (  # (prefix, whole replacement) or (prefix, enhanced code to insert after the basic code)
    ("500 Error: command ", "500 5.5.2 Error: command not recognized"),
    ("500 Error: (", Verdict.LOCAL_ERROR.reply()),  # an exception's name must never reach the wire
    ("501 Syntax: ", "5.5.4"),
    ("502 ", "5.5.1"),
    ("555 ", "555 5.5.4 Error: parameters not recognized or not implemented"),
)
_HAS_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")


def standard_reply(line: str) -> str:
    """One reply line aiosmtpd produced → the same verdict with an enhanced status code, in house wording."""
    if _HAS_ENHANCED.match(line):
        return line
    if line in _AIOSMTPD_EXACT:
        return _AIOSMTPD_EXACT[line]
    for prefix, replacement in _AIOSMTPD_PREFIX:
        if line.startswith(prefix):
            return replacement if len(replacement) > 5 else f"{line[:3]} {replacement} {line[4:]}"
    return line
