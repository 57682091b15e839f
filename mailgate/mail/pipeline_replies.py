"""The SMTP replies mailgate itself gives after it accepted a message, in one table: those egress records when an
attempt could not get a reply from a server (deferrals, expiry, internal errors) and those the processor reports in
a DSN. Ingress's wire replies to clients are its own table (`ingress/replies.py`, verdict → reply).

Reads: nothing. Emits: `Reply` values (`mailgate.mail.smtp_reply`), whose class decides retry versus bounce.
"""
from __future__ import annotations

from mailgate.mail.smtp_reply import Reply

QUEUE_LIFETIME_EXCEEDED = Reply(451, "4.4.7", "queue lifetime exceeded")
"""The message is older than `delivery.max_queue_lifetime`: it is expired (bounced with a DSN), not retried."""

NO_USABLE_GATEWAY = Reply(451, "4.4.1", "no usable gateway")
"""Every gateway of the route is disabled or marked down: wait for the next attempt."""

INTERNAL_DELIVERY_ERROR = Reply(451, "4.3.0", "internal delivery error")
"""A bug in egress while delivering: the message waits for the next attempt rather than being lost."""

USER_UNKNOWN = Reply(550, "5.1.1", "Recipient address rejected: User unknown")
"""A recipient the primary server's directory does not know (the reply ingress would have given at RCPT)."""

DOMAIN_NOT_ACCEPTED = Reply(554, "5.7.1", "Recipient address rejected: domain not accepted here")
"""A recipient whose domain the inbound gateway no longer accepts when the processor re-checks it (web_service
domain verification: the SmarterMail server no longer lists it)."""


def content_rejected(verdict: str) -> Reply:
    """The message's content was refused by the virus scan or an attachment rule: `verdict` names what was found
    (the signature, or the file and rule). The reply scan_at_data gives at DATA and a bounce action's DSN reports."""
    return Reply(554, "5.7.1", f"Message content rejected: {verdict}")


def no_connection(detail: str) -> Reply:
    """A transient failure without a usable server reply (connect, TLS, AUTH, timeout, lost connection)."""
    return Reply(451, "4.4.1", detail)


def refused(detail: str) -> Reply:
    """A permanent failure that carried no reply of the server's own."""
    return Reply(554, "5.0.0", detail)


__all__ = ["DOMAIN_NOT_ACCEPTED", "INTERNAL_DELIVERY_ERROR", "NO_USABLE_GATEWAY", "QUEUE_LIFETIME_EXCEEDED",
           "USER_UNKNOWN", "content_rejected", "no_connection", "refused"]
