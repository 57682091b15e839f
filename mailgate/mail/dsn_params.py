"""DSN request parameters (RFC 3461): check what a client sent with MAIL (RET, ENVID) and RCPT (NOTIFY, ORCPT), and
write them again for a next hop.

Reads: the parameter words of one MAIL or RCPT command as the client sent them (case kept: ENVID and ORCPT are the
sender's own strings). Emits: the DSN request with its xtext decoded and the words that were not DSN parameters
(for aiosmtpd: SIZE, BODY, SMTPUTF8), or a `DsnParamError` whose `problem` is the reply ingress gives
(`ingress/replies.py`); and `mail_words` / `rcpt_words`, the same request xtext-encoded for a next hop that offers
DSN. `wants` answers "does this recipient want a notice of this kind" (no NOTIFY: failures and delays, RFC 3461 4.1).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")
"""The NOTIFY values besides NEVER, which stands alone (RFC 3461 4.1)."""
MAX_ENVID_CHARS = 100
"""RFC 3461 4.4: an ENVID value (as sent, xtext) has at most 100 characters."""
MAX_ORCPT_CHARS = 500
"""RFC 3461 4.2: an ORCPT value (address type, ";", xtext) has at most 500 characters."""

_HEX = re.compile(r"\+([0-9A-F]{2})")
_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")


class Problem(enum.Enum):
    """What is wrong with a DSN parameter; ingress's replies table has one reply per member."""
    BAD_RET = "RET"
    BAD_ENVID = "ENVID"
    ENVID_TOO_LONG = "ENVID length"
    BAD_NOTIFY = "NOTIFY"
    NOTIFY_NEVER_COMBINED = "NOTIFY=NEVER"
    BAD_ORCPT = "ORCPT"
    ORCPT_TOO_LONG = "ORCPT length"
    DUPLICATE = "duplicate"


class DsnParamError(ValueError):
    def __init__(self, problem: Problem, param: str) -> None:
        super().__init__(f"{problem.value}: {param}")
        self.problem = problem
        self.param = param
        """The parameter's keyword (RET, ENVID, NOTIFY, ORCPT)."""


def xtext_decode(text: str) -> str:
    """RFC 3461 4 xtext → the string it stands for. ValueError for "+" not followed by two upper-case hex digits,
    for "=", for a control character or space. Characters above ASCII are kept (an SMTPUTF8 client's ORCPT)."""
    if "=" in text or any(c <= " " or c == "\x7f" for c in text):
        raise ValueError("not xtext")
    if text.count("+") != len(_HEX.findall(text)):
        raise ValueError("a '+' not followed by two hex digits")
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), text)


def xtext_encode(text: str) -> str:
    """A string → xtext: "+", "=", space, controls and bytes above ASCII (UTF-8) as "+XX"."""
    out = []
    for c in text:
        if "!" <= c <= "~" and c not in "+=":
            out.append(c)
        else:
            out.extend(f"+{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


@dataclass(frozen=True)
class MailDsn:
    ret: str | None = None
    """FULL or HDRS: what a DSN returns of the message; None when not given."""
    envid: str | None = None
    """The sender's envelope id, xtext decoded; None when not given."""


@dataclass(frozen=True)
class RcptDsn:
    notify: tuple[str, ...] = ()
    """NEVER, or some of SUCCESS, FAILURE, DELAY (upper case, in the order given); empty when not given."""
    orcpt: str | None = None
    """`addr-type;address` with the address xtext decoded (e.g. `rfc822;Joe@example.test`); None when not given."""


def _split(words: list[str], names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    rest: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        name = key.upper()
        if name not in names:
            rest.append(word)
            continue
        if name in found:
            raise DsnParamError(Problem.DUPLICATE, name)
        found[name] = value if eq else ""
    return found, rest


def take_mail_params(words: list[str]) -> tuple[MailDsn, list[str]]:
    """RET and ENVID out of MAIL's parameter words; the other words as they were. DsnParamError when bad."""
    found, rest = _split(words, ("RET", "ENVID"))
    ret = found.get("RET")
    if ret is not None:
        ret = ret.upper()
        if ret not in ("FULL", "HDRS"):
            raise DsnParamError(Problem.BAD_RET, "RET")
    envid = found.get("ENVID")
    if envid is not None:
        if len(envid) > MAX_ENVID_CHARS:
            raise DsnParamError(Problem.ENVID_TOO_LONG, "ENVID")
        try:
            envid = xtext_decode(envid)
        except ValueError:
            raise DsnParamError(Problem.BAD_ENVID, "ENVID") from None
        if not envid or not envid.isascii():
            raise DsnParamError(Problem.BAD_ENVID, "ENVID")
    return MailDsn(ret, envid), rest


def take_rcpt_params(words: list[str]) -> tuple[RcptDsn, list[str]]:
    """NOTIFY and ORCPT out of RCPT's parameter words; the other words as they were. DsnParamError when bad."""
    found, rest = _split(words, ("NOTIFY", "ORCPT"))
    notify: tuple[str, ...] = ()
    if "NOTIFY" in found:
        values = found["NOTIFY"].upper().split(",")
        if any(v not in (*NOTIFY_KEYWORDS, "NEVER") for v in values) or len(set(values)) != len(values):
            raise DsnParamError(Problem.BAD_NOTIFY, "NOTIFY")
        if "NEVER" in values and len(values) > 1:
            raise DsnParamError(Problem.NOTIFY_NEVER_COMBINED, "NOTIFY")
        notify = tuple(values)
    orcpt = found.get("ORCPT")
    if orcpt is not None:
        if len(orcpt) > MAX_ORCPT_CHARS:
            raise DsnParamError(Problem.ORCPT_TOO_LONG, "ORCPT")
        kind, semi, address = orcpt.partition(";")
        try:
            decoded = xtext_decode(address)
        except ValueError:
            raise DsnParamError(Problem.BAD_ORCPT, "ORCPT") from None
        if not semi or not _ATOM.match(kind) or not decoded:
            raise DsnParamError(Problem.BAD_ORCPT, "ORCPT")
        orcpt = f"{kind};{decoded}"
    return RcptDsn(notify, orcpt), rest


def mail_words(ret: str | None, envid: str | None) -> list[str]:
    """The MAIL parameters to send a next hop that offers DSN."""
    return ([f"RET={ret}"] if ret else []) + ([f"ENVID={xtext_encode(envid)}"] if envid else [])


def rcpt_words(notify: list[str] | tuple[str, ...], orcpt: str | None) -> list[str]:
    """The RCPT parameters to send a next hop that offers DSN."""
    words = [f"NOTIFY={','.join(notify)}"] if notify else []
    if orcpt:
        kind, _, address = orcpt.partition(";")
        words.append(f"ORCPT={kind};{xtext_encode(address)}")
    return words


def next_hop_words(request: "DsnRequest | None", rcpts: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The MAIL parameters and each recipient's RCPT parameters for a next hop: `request`'s (None: the next hop
    does not offer DSN, so none)."""
    if request is None:
        return [], {r: [] for r in rcpts}
    return (mail_words(request.ret, request.envid),
            {r: rcpt_words(request.of_recipient(r).notify, request.of_recipient(r).orcpt) for r in rcpts})


def wants(notify: list[str] | tuple[str, ...], kind: str) -> bool:
    """Whether a recipient with this NOTIFY wants a notice of `kind` (SUCCESS, FAILURE or DELAY). Without NOTIFY:
    failures and delays (RFC 3461 4.1 leaves DELAY to the MTA; mailgate sends no delay notices, see docs)."""
    if not notify:
        return kind in ("FAILURE", "DELAY")
    return kind in notify




@dataclass(frozen=True)
class DsnRequest:
    """What the sender of one message asked for, as MessageReceived and MessageRouted record it."""
    ret: str | None = None
    envid: str | None = None
    recipients: tuple[tuple[str, RcptDsn], ...] = ()

    @classmethod
    def of(cls, record: object) -> "DsnRequest":
        """The request a MessageReceived or MessageRouted carries (none for records of earlier releases)."""
        rcpts = tuple((r.recipient, RcptDsn(tuple(r.notify), r.orcpt))
                      for r in getattr(record, "dsn_recipients", None) or ())
        return cls(getattr(record, "dsn_ret", None), getattr(record, "dsn_envid", None), rcpts)

    def of_recipient(self, rcpt: str) -> RcptDsn:
        for r, dsn in self.recipients:
            if r == rcpt:
                return dsn
        return RcptDsn()

    def wants(self, rcpt: str, kind: str) -> bool:
        """Whether `rcpt`'s NOTIFY asks for a notice of `kind` (SUCCESS, FAILURE, DELAY)."""
        return wants(self.of_recipient(rcpt).notify, kind)


def summary(ret: str | None, envid: str | None, recipients: list[tuple[str, list[str], str | None]]) -> str | None:
    """The DSN request in one line for people (trace, search): `RET=HDRS ENVID=x; a@b NOTIFY=SUCCESS
    ORCPT=rfc822;A@b`; None when the sender asked for nothing."""
    parts = " ".join(([f"RET={ret}"] if ret else []) + ([f"ENVID={envid}"] if envid else []))
    each = [" ".join([r] + ([f"NOTIFY={','.join(n)}"] if n else []) + ([f"ORCPT={o}"] if o else []))
            for r, n, o in recipients]
    text = "; ".join(p for p in [parts, *each] if p)
    return text or None


__all__ = ["DsnParamError", "DsnRequest", "MailDsn", "Problem", "RcptDsn", "mail_words", "next_hop_words",
           "rcpt_words", "summary", "take_mail_params", "take_rcpt_params", "wants", "xtext_decode", "xtext_encode"]
