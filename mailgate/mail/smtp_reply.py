"""One SMTP reply as a value: basic code, RFC 3463 enhanced code, text, and what it means for the message.

Reads: a reply code and its text, as a server sent it or as aiosmtplib reports it (`SMTPResponse`, or an
`SMTPResponseException` such as `SMTPRecipientRefused`). Emits: a frozen `Reply` whose `is_transient()` /
`is_permanent()` decide retry versus bounce (modelled on KumoMTA's `rfc5321::Response`). The decision reads the
basic code only, never the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=[ \t]|$)")
"""RFC 3463 `class.subject.detail` at the start of a line: class 2, 4 or 5; subject and detail 1-3 digits."""


@dataclass(frozen=True)
class Reply:
    """A server's reply to one command (or its greeting)."""

    code: int
    """The three-digit basic code (RFC 5321 section 4.2). aiosmtplib uses -1 for a malformed reply."""
    enhanced_code: str | None
    """RFC 3463 enhanced status code such as `5.1.1`, or None when the server gave none."""
    text: str
    """The human text with the enhanced code removed; lines of a multi-line reply are joined by `\\n`."""

    def is_success(self) -> bool:
        """Positive: 2xx (completed) or 3xx (intermediate, e.g. 354 after DATA, 334 during AUTH)."""
        return 200 <= self.code < 400

    def is_intermediate(self) -> bool:
        """3xx: the server waits for more from us."""
        return 300 <= self.code < 400

    def is_transient(self) -> bool:
        """4xx: the command failed for now; the same mail may succeed later."""
        return 400 <= self.code < 500

    def is_permanent(self) -> bool:
        """5xx: the command failed and will fail again; the mail is bounced."""
        return 500 <= self.code < 600

    @classmethod
    def parse(cls, code: int, message: str) -> Reply:
        """Split `message` into enhanced code and text.

        The enhanced code is taken from the start of the first line; continuation lines starting with the same
        code (`550-5.1.1 ...` / `550 5.1.1 ...`) have it removed too. Surrounding blanks are trimmed.
        """
        lines = [line.strip() for line in message.replace("\r\n", "\n").split("\n")]
        first = _ENHANCED.match(lines[0]) if lines else None
        if first is None:
            return cls(code, None, "\n".join(lines).strip())
        enhanced = ".".join(str(int(part)) for part in first.groups())
        raw = first.group(0)
        text_lines = [line[len(raw):].lstrip() if line.startswith(raw) else line for line in lines]
        return cls(code, enhanced, "\n".join(text_lines).strip())

    @classmethod
    def from_aiosmtplib(cls, reply: object) -> Reply:
        """A `Reply` from an `aiosmtplib.SMTPResponse` or an aiosmtplib exception that carries code and message.

        Raises TypeError for anything else (e.g. `SMTPServerDisconnected`, `SMTPRecipientsRefused`: take each of
        its `.recipients`), so a caller never invents a code for a failure the server did not reply to.
        """
        if isinstance(reply, (aiosmtplib.SMTPResponse, aiosmtplib.SMTPResponseException)):
            return cls.parse(reply.code, reply.message)
        raise TypeError(f"no SMTP reply in {type(reply).__name__}")

    def one_line(self) -> str:
        """The reply on a single line: `550 5.1.1 text` with the lines of the text joined by a space."""
        parts = [str(self.code)]
        if self.enhanced_code:
            parts.append(self.enhanced_code)
        text = " ".join(line for line in self.text.split("\n") if line)
        if text:
            parts.append(text)
        return " ".join(parts)

    def __str__(self) -> str:
        return self.one_line()


from_aiosmtplib = Reply.from_aiosmtplib
"""Module-level alias of `Reply.from_aiosmtplib`."""

__all__ = ["Reply", "from_aiosmtplib"]
