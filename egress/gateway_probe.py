"""The gateway connection probe ("verify connection before save"): open one session to an outbound gateway exactly
as delivery would, and send no mail.

Reads: an OutboundGateway entry (address, port, encryption, CA, AUTH) and the DeliveryConfig timeouts.
Emits: a VerifyResult — ok, or the step that failed (connect, greeting, ehlo, starttls, auth) with a precise
message, printed by `mailgate gateway verify NAME` and answered by the admin API's `POST /api/gateways/verify`.
The message comes from the delivery engine's own errors, which mask the password; it never holds a secret.
"""
from __future__ import annotations

from dataclasses import dataclass

from egress.errors import DeliveryError
from egress.smtp_session import SmtpSession
from egress.targets import gateway_target
from mailgate.core.config import Config, ConfigError, DeliveryConfig, OutboundGateway


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of one verification."""

    gateway: str
    """The gateway's configured name."""
    ok: bool
    """True when connect, EHLO, TLS (as configured) and AUTH (if configured) all succeeded."""
    step: str | None
    """The step that failed (`connect`, `greeting`, `ehlo`, `starttls`, `auth`); None when ok."""
    message: str
    """What happened, for the operator: the failure's reason, or what was negotiated."""
    error: str | None = None
    """The failure's class name (ConnectFailed, TlsFailed, AuthFailed, ProtocolTimeout, ServerReplied)."""
    tls_version: str | None = None
    """The negotiated TLS version, when encryption is on and it worked."""

    def line(self) -> str:
        """One line for a terminal."""
        if self.ok:
            return f"{self.gateway}: ok ({self.message})"
        return f"{self.gateway}: FAILED at {self.step} [{self.error}]: {self.message}"


async def verify_gateway(gw: OutboundGateway, delivery: DeliveryConfig) -> VerifyResult:
    """Connect, EHLO, STARTTLS or implicit TLS as configured, AUTH if configured; QUIT. No mail is sent."""
    target = gateway_target(gw)
    session = None
    try:
        session = SmtpSession(target, delivery)  # DeliveryError already if its TLS settings cannot be used
        await session.open()
    except DeliveryError as err:
        return VerifyResult(gateway=gw.name, ok=False, step=err.step, message=err.detail or str(err),
                            error=type(err).__name__)
    finally:
        if session is not None:
            await session.close()
    done = [f"connected to {target.label}"]
    if session.tls_version:
        done.append(f"{gw.encryption} {session.tls_version}")
    if gw.auth_username:
        done.append(f"authenticated as {gw.auth_username}")
    return VerifyResult(gateway=gw.name, ok=True, step=None, message=", ".join(done), tls_version=session.tls_version)


async def print_verify(cfg: Config, name: str | None) -> int:
    """`mailgate gateway verify NAME`: print the result; exit status 0 if ok, 1 if the check failed."""
    gw = next((g for g in cfg.outbound_gateways if g.name == name), None)
    if gw is None:
        raise ConfigError(f"no outbound gateway named {name!r}")
    result = await verify_gateway(gw, cfg.delivery)
    print(result.line())
    return 0 if result.ok else 1


__all__ = ["VerifyResult", "print_verify", "verify_gateway"]
