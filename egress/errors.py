"""Why one delivery attempt failed: one class per failure mode, each saying whether the mail should wait or bounce.

Reads: nothing; the delivery engine raises these. Emits: exceptions whose `transient` flag is the retry/bounce
decision (as aiokafka's `retriable`), and whose `step` names the SMTP step that failed, so "verify connection
before save" can say "auth failed" without parsing text. Decisions read the class and `transient`, never str().

No str() or repr() of these errors contains a password: messages are built from a reply or a short reason, and
every constructor takes `secrets=` (the values to mask) and replaces each occurrence with `***`, in the message
and in any carried `Reply`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from mailgate.mail.smtp_reply import Reply

Step = Literal["connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data"]
"""The SMTP step an attempt had reached when it failed, in session order."""

STEPS: tuple[str, ...] = get_args(Step)

_MASK = "***"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


def _scrub_reply(reply: Reply, secrets: Iterable[str]) -> Reply:
    text = _scrub(reply.text, secrets)
    return reply if text == reply.text else Reply(reply.code, reply.enhanced_code, text)


class DeliveryError(Exception):
    """A delivery attempt failed at `step`. `transient`: True means defer and retry, False means bounce."""

    transient: bool = True
    default_step: Step = "connect"
    may_have_been_delivered: bool = False
    """True when the server may have the message although the attempt failed: retry later, do not try elsewhere."""

    def __init__(self, detail: str = "", *, step: Step | None = None, secrets: Iterable[str] = ()) -> None:
        step = step or self.default_step
        if step not in STEPS:
            raise ValueError(f"unknown delivery step {step!r}")
        self.step: Step = step
        self.detail = _scrub(detail, list(secrets))
        super().__init__(self.detail)

    def __str__(self) -> str:
        return f"{self.step}: {self.detail}" if self.detail else self.step

    def __repr__(self) -> str:
        return f"{type(self).__name__}(step={self.step!r}, detail={self.detail!r})"


class ConnectFailed(DeliveryError):
    """No TCP (or implicit TLS) connection: refused, unreachable, DNS failure, reset before the greeting."""

    transient = True
    default_step = "connect"


class TlsFailed(DeliveryError):
    """TLS could not be set up: STARTTLS required but not offered, refused, or the handshake/verification failed."""

    transient = True
    default_step = "starttls"

    @classmethod
    def not_offered(cls) -> TlsFailed:
        """The gateway is configured for STARTTLS but the server's EHLO did not offer it."""
        return cls("STARTTLS required but not offered by the server")

    @classmethod
    def handshake(cls, reason: str, *, step: Step = "starttls") -> TlsFailed:
        """The TLS handshake failed (certificate not trusted, name mismatch, protocol error); `reason` says which."""
        return cls(f"TLS handshake failed: {reason}", step=step)


class AuthFailed(DeliveryError):
    """AUTH was refused or is impossible. Transient even on 535: a wrong password is the operator's to fix, so the
    mail waits for the fix instead of bouncing."""

    transient = True
    default_step = "auth"

    def __init__(self, detail: str = "", *, reply: Reply | None = None, step: Step | None = None,
                 secrets: Iterable[str] = ()) -> None:
        secrets = list(secrets)
        self.reply = None if reply is None else _scrub_reply(reply, secrets)
        if reply is not None:
            detail = f"{detail}: {reply}" if detail else str(reply)
        super().__init__(detail or "authentication failed", step=step, secrets=secrets)


class ProtocolTimeout(DeliveryError):
    """The server did not answer within the step's timeout (`timeout_s`, seconds)."""

    transient = True
    default_step = "greeting"

    def __init__(self, detail: str = "", *, timeout_s: float | None = None, step: Step | None = None,
                 secrets: Iterable[str] = ()) -> None:
        self.timeout_s = timeout_s
        if timeout_s is not None:
            detail = f"{detail} (no reply within {timeout_s:g}s)" if detail else f"no reply within {timeout_s:g}s"
        super().__init__(detail or "timed out", step=step, secrets=secrets)


class ServerReplied(DeliveryError):
    """The server refused a command with `reply`. `transient` is set per instance from the reply: only a definite
    5xx bounces; 4xx, and anything unexpected (e.g. a malformed reply, code -1), waits and retries."""

    def __init__(self, reply: Reply, *, step: Step, secrets: Iterable[str] = ()) -> None:
        secrets = list(secrets)
        self.reply = _scrub_reply(reply, secrets)
        self.transient = not reply.is_permanent()
        super().__init__(str(reply), step=step, secrets=secrets)


class ConnectionLostAfterData(DeliveryError):
    """The connection dropped after the message was sent but before the reply to the final dot. The server may
    have accepted and delivered it, so a retry risks a duplicate (RFC 1047); retrying is still preferred to losing
    mail, and `may_have_been_delivered` lets the engine record that risk in its events."""

    transient = True
    default_step = "data"
    may_have_been_delivered = True


__all__ = ["STEPS", "AuthFailed", "ConnectFailed", "ConnectionLostAfterData", "DeliveryError", "ProtocolTimeout",
           "ServerReplied", "Step", "TlsFailed"]
