"""The DSN parameters of one MAIL or RCPT command on ingress, taken out before aiosmtpd sees the command.

Reads: the command's argument as the client sent it (`FROM:<a@b.test> RET=HDRS ENVID=x+2By`). Emits: the argument
without RET/ENVID (MAIL) or NOTIFY/ORCPT (RCPT) for aiosmtpd (which upper-cases parameters and answers 555 to any
it does not know), and the parsed request (mailgate.mail.dsn_params), or the reply for a bad parameter from
`ingress.replies` (501 5.5.4). A DSN parameter on the other command (NOTIFY on MAIL, RET on RCPT) is left in, so
aiosmtpd answers it 555 5.5.4 like any parameter it does not know. `GatewaySMTP` calls `take` for an EHLO session
only: after HELO, parameters are a syntax error (aiosmtpd's 501).
"""
from __future__ import annotations

import collections

from mailgate.mail.dsn_params import DsnParamError, MailDsn, Problem, RcptDsn, take_mail_params, take_rcpt_params
from ingress.replies import Verdict

_REPLY = {
    Problem.BAD_RET: Verdict.DSN_BAD_RET,
    Problem.BAD_ENVID: Verdict.DSN_BAD_ENVID,
    Problem.ENVID_TOO_LONG: Verdict.DSN_ENVID_TOO_LONG,
    Problem.BAD_NOTIFY: Verdict.DSN_BAD_NOTIFY,
    Problem.NOTIFY_NEVER_COMBINED: Verdict.DSN_NOTIFY_NEVER_COMBINED,
    Problem.BAD_ORCPT: Verdict.DSN_BAD_ORCPT,
    Problem.ORCPT_TOO_LONG: Verdict.DSN_ORCPT_TOO_LONG,
    Problem.DUPLICATE: Verdict.DSN_DUPLICATE,
}


COMMAND_SIZE_LIMIT = 512
"""RFC 5321 4.5.3.1.4: a command line's length, CRLF included (aiosmtpd's SMTP.command_size_limit)."""


def command_size_limits(size: bool, smtputf8: bool) -> collections.defaultdict[str, int]:
    """Each command's longest line after EHLO: 512, MAIL longer by what the offered extensions add (SIZE 26,
    SMTPUTF8 10 as aiosmtpd counts them; DSN 110 for RET and ENVID, RFC 3461 4), RCPT longer by 500 (NOTIFY, ORCPT).
    One table per session: aiosmtpd adds to a dict all its sessions share, at every EHLO."""
    mail = COMMAND_SIZE_LIMIT + (26 if size else 0) + (10 if smtputf8 else 0) + 110
    return collections.defaultdict(lambda: COMMAND_SIZE_LIMIT, MAIL=mail, RCPT=COMMAND_SIZE_LIMIT + 500)


def _address_end(text: str) -> int:
    """Where the path ends in `FROM:<...> params` (after `>`, or at the first blank for a path without `<>`)."""
    colon = text.find(":") + 1
    rest = text[colon:].lstrip()
    start = len(text) - len(rest)
    if rest.startswith("<"):
        end = rest.find(">")
        return len(text) if end < 0 else start + end + 1
    blank = rest.find(" ")
    return len(text) if blank < 0 else start + blank


def take(command: str, arg: str | None) -> tuple[str | None, MailDsn | RcptDsn | None, str | None]:
    """(argument for aiosmtpd, the DSN request, None) or (arg, None, reply) for a bad DSN parameter."""
    if arg is None:
        return arg, (MailDsn() if command == "MAIL" else RcptDsn()), None
    end = _address_end(arg)
    head, words = arg[:end], arg[end:].split()
    try:
        request, rest = take_mail_params(words) if command == "MAIL" else take_rcpt_params(words)
    except DsnParamError as err:
        return arg, None, _REPLY[err.problem].reply(param=err.param)
    return (head + " " + " ".join(rest) if rest else head), request, None
