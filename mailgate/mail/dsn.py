"""Delivery status notifications: build an RFC 3464 DSN (a bounce, or the success notice a sender asked for with
NOTIFY=SUCCESS), and decide whether one may be sent at all.

Reads: the message's envelope sender, its header section (or the whole message, RET=FULL), the sender's DSN request
(RFC 3461: ENVID, ORCPT; mailgate.mail.dsn_params) and the final reply for each recipient reported.
Emits: the DSN as bytes with CRLF line endings (`multipart/report; report-type=delivery-status`: a human-readable
part, a `message/delivery-status` part, and the original headers as `text/rfc822-headers`, or the message as
`message/rfc822`). The DSN's envelope
sender is the null sender `<>` (the caller's job); `should_send_dsn` refuses to bounce a bounce, so no loop forms.
`dsn_received` wraps a DSN as the MessageReceived that carries it into the pipeline (egress bounces and the
processor's recipient rejections both use it).
"""
from __future__ import annotations

import hashlib
import quopri
import textwrap
import uuid
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid

from mailgate.mail.dsn_params import DsnRequest
from mailgate.mail.smtp_reply import Reply
from mailgate.core.config import Config
from schemas import MessageReceived

CRLF = "\r\n"


def should_send_dsn(mail_from: str, headers: bytes) -> bool:
    """False when a bounce must not be sent: null sender (`""` / `"<>"`), or the original is itself a delivery
    status report (`multipart/report; report-type=delivery-status`) or auto-submitted (`Auto-Submitted:` other than
    `no`, RFC 3834). Never a bounce loop."""
    if mail_from.strip() in ("", "<>"):
        return False
    original = BytesHeaderParser(policy=compat32).parsebytes(headers)
    if original.get_content_type() == "multipart/report":
        if str(original.get_param("report-type", "")).lower() == "delivery-status":
            return False
    for value in original.get_all("Auto-Submitted", []):
        if str(value).split(";")[0].strip().lower() != "no":
            return False
    return True


def _clean(value: str) -> str:
    """One header-safe line: no CR or LF can end the field early (header injection)."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _bare(address: str) -> str:
    address = _clean(address)
    return address[1:-1] if address.startswith("<") and address.endswith(">") else address


def _unitext(value: str) -> str:
    """ASCII for the delivery-status part: other characters as RFC 6533 `\\x{HEX}`."""
    return "".join(c if " " <= c <= "~" else f"\\x{{{ord(c):X}}}" for c in _clean(value))


def _recipient(rcpt: str) -> str:
    """`Final-Recipient` value: `rfc822; addr`, or RFC 6533 `utf-8; addr` for an internationalized address."""
    addr = _bare(rcpt)
    return f"rfc822; {addr}" if addr.isascii() else f"utf-8; {_unitext(addr)}"


def _fold(field: str) -> str:
    """A long header field folded at blanks (RFC 5322 section 2.2.3), continuation lines indented."""
    return (CRLF + " ").join(textwrap.wrap(field, 78, break_long_words=False, break_on_hyphens=False))


def _status(reply: Reply, expired: bool) -> str:
    """The RFC 3463 code for `Action: failed`, which is permanent (class 5) by definition."""
    if reply.enhanced_code and reply.enhanced_code.startswith("5."):
        return reply.enhanced_code
    if expired or not reply.is_permanent():
        return "5.4.7"  # delivery time expired
    return "5.0.0"


def _text_part(text: str, content_type: str) -> str:
    """A MIME body part; 7bit when `text` is ASCII with short lines, quoted-printable otherwise."""
    raw = text.replace("\r\n", "\n").replace("\n", CRLF).encode("utf-8", "surrogateescape")
    if raw.isascii() and all(len(line) <= 998 for line in raw.split(b"\r\n")):
        return f"Content-Type: {content_type}{CRLF}Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{raw.decode()}"
    body = CRLF.join(quopri.encodestring(line).decode("ascii").replace("\n", CRLF) for line in raw.split(b"\r\n"))
    return f"Content-Type: {content_type}{CRLF}Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{body}"


SUCCESS_ACTIONS = ("relayed", "delivered")
"""RFC 3464 actions of a success notice: `relayed` (the next hop does not offer DSN, RFC 3461 5.2.3) and
`delivered`."""


def _human(reporting_mta: str, reason: str, failed: list[tuple[str, Reply]], expired: bool, action: str) -> str:
    lines = [f"This is the mail system at host {reporting_mta}.", ""]
    if action == "failed":
        lines.append("Your message could not be delivered to one or more recipients.")
        if expired:
            lines.append("It could not be delivered before its queue lifetime expired.")
        lines += ["", f"Reason: {_clean(reason)}", ""]
    else:
        lines.append("Your message was successfully " + ("delivered to" if action == "delivered" else "relayed to")
                     + " the recipients below, as you asked (NOTIFY=SUCCESS).")
        if action == "relayed":
            lines.append("The next mail server does not offer delivery status notifications: this is the last "
                         "notice you will get for them.")
        lines.append("")
    lines += [f"<{_bare(rcpt)}>: {reply}" for rcpt, reply in failed]
    return CRLF.join(lines) + CRLF


def _success_status(reply: Reply) -> str:
    return reply.enhanced_code if reply.enhanced_code and reply.enhanced_code.startswith("2.") else "2.0.0"


def _delivery_status(reporting_mta: str, original_message_id: str, arrival: str,
                     failed: list[tuple[str, Reply]], expired: bool, action: str, request: DsnRequest) -> str:
    envid = [f"Original-Envelope-Id: {_unitext(request.envid)}"] if request.envid else []
    blocks = [envid + [f"Reporting-MTA: dns; {_unitext(reporting_mta)}",
                       f"X-Mailgate-Queue-ID: {_unitext(original_message_id)}",
                       f"Arrival-Date: {arrival}"]]
    for rcpt, reply in failed:
        orcpt = request.of_recipient(rcpt).orcpt
        kind, _, address = (orcpt or "").partition(";")
        blocks.append(([f"Original-Recipient: {_unitext(kind)}; {_unitext(address)}"] if orcpt else [])
                      + [f"Final-Recipient: {_recipient(rcpt)}",
                         f"Action: {action}",
                         f"Status: {_status(reply, expired) if action == 'failed' else _success_status(reply)}",
                         _fold(f"Diagnostic-Code: smtp; {_unitext(str(reply))}")])
    return (CRLF + CRLF).join(CRLF.join(block) for block in blocks) + CRLF


def _returned(original: bytes, headers: bytes, full: bool) -> str:
    """The third part: the whole message (`message/rfc822`, RET=FULL) or its header section."""
    if not full:
        return _text_part(headers.decode("utf-8", "surrogateescape"), "text/rfc822-headers")
    text = original.decode("utf-8", "surrogateescape")
    cte = "7bit" if original.isascii() else "8bit"
    return f"Content-Type: message/rfc822{CRLF}Content-Transfer-Encoding: {cte}{CRLF}{CRLF}{text}"


def build_dsn(*, reporting_mta: str, original_message_id: str, original_mail_from: str,
              failed: list[tuple[str, Reply]], original_headers: bytes, arrival_date: datetime, reason: str,
              expired: bool = False, now: datetime | None = None, from_local: str = "MAILER-DAEMON",
              action: str = "failed", request: DsnRequest | None = None,
              original: bytes | None = None) -> bytes:
    """The notice for `failed` (recipient, final reply) pairs, addressed to `original_mail_from`.

    `action` is RFC 3464's for every recipient listed: `failed` (a bounce), or `relayed` / `delivered` (a
    success notice the sender asked for with NOTIFY=SUCCESS). `request` is the sender's DSN request (RFC 3461):
    its ENVID is the Original-Envelope-Id, each recipient's ORCPT its Original-Recipient, and RET=FULL returns
    `original` (the whole message) in a failure notice; otherwise, and always in a success notice (RFC 3461
    4.3), only `original_headers`. `original_message_id` is mailgate's id of the message (reported as
    `X-Mailgate-Queue-ID`); the original's own Message-ID, if its headers have one, is referenced by In-Reply-To /
    References. Naive datetimes are taken as UTC. `from_local` is the local part of From
    (`DeliveryConfig.bounce_from`). Raises ValueError for the null sender or an empty `failed` list: check
    `should_send_dsn` first.
    """
    to = _bare(original_mail_from)
    if not to:
        raise ValueError("the null sender gets no DSN")
    if not failed:
        raise ValueError("a DSN needs at least one recipient")
    request = request or DsnRequest()
    mta = _clean(reporting_mta)
    boundary = f"=_mailgate-dsn-{uuid.uuid4().hex}"
    subject = ("Undelivered Mail Returned to Sender" + (" (delivery time expired)" if expired else "")
               if action == "failed" else "Successful Mail Delivery Report")
    header = [f"From: Mail Delivery System <{_clean(from_local) or 'MAILER-DAEMON'}@{mta}>",
              f"To: <{to}>",
              f"Subject: {subject}",
              f"Date: {format_datetime(_utc(now or datetime.now(timezone.utc)))}",
              f"Message-ID: {make_msgid('dsn', domain=mta)}",
              "Auto-Submitted: auto-replied"]
    original_id = BytesHeaderParser(policy=compat32).parsebytes(original_headers).get("Message-ID")
    if original_id:
        header += [f"In-Reply-To: {_clean(str(original_id))}", f"References: {_clean(str(original_id))}"]
    header += ["MIME-Version: 1.0",
               f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"']
    full = action == "failed" and request.ret == "FULL" and original is not None
    parts = [_text_part(_human(mta, reason, failed, expired, action), "text/plain; charset=utf-8"),
             "Content-Type: message/delivery-status" + CRLF + CRLF
             + _delivery_status(mta, original_message_id, format_datetime(_utc(arrival_date)), failed, expired,
                                action, request),
             _returned(original or b"", original_headers, full)]
    out = CRLF.join(header) + CRLF + CRLF + "This is a MIME-encapsulated message." + CRLF + CRLF
    for part in parts:
        out += f"--{boundary}{CRLF}{part}"
        if not part.endswith(CRLF):
            out += CRLF
        out += CRLF
    out += f"--{boundary}--{CRLF}"
    return out.encode("utf-8", "surrogateescape")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


__all__ = ["SUCCESS_ACTIONS", "build_dsn", "dsn_received", "should_send_dsn"]


def dsn_received(cfg: Config, node: str, dsn_id: str, to: str, dsn: bytes, now: int) -> MessageReceived:
    """A DSN entering the pipeline as mail received from <> for `to` (inbound if `to`'s domain is ours)."""
    gw = cfg.inbound_gateway_for(to.rsplit("@", 1)[-1].lower())
    return MessageReceived(
        message_id=dsn_id, occurred_at=now, node=node, direction="inbound" if gw else "outbound",
        inbound_gateway=gw.name if gw else None, client_address="127.0.0.1", client_helo=cfg.delivery.helo_name,
        client_auth=None, tls=None, mail_from="", rcpt_to=[to], size_bytes=len(dsn),
        body_sha256=hashlib.sha256(dsn).hexdigest(), body=dsn)
