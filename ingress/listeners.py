"""Ingress's SMTP listeners: the main one (`listen_host`:`listen_port`) and any in `ingress.listeners`.

Reads: `ingress` config (tls, listeners, auth). Emits: one `Listener` per bound port, saying how its sessions are
made — STARTTLS offered or TLS from the first byte (port 465), whether AUTH is offered and required, whether MAIL
must wait for STARTTLS, the pre-greet test's action, whether DNS lists are asked, and bare LF from trusted clients.
AUTH is never offered on a cleartext session: aiosmtpd answers `538 5.7.11` to AUTH before
STARTTLS, and an implicit-TLS session is encrypted from its first byte.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

from mailgate.core.config import Config, ListenerConfig


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int
    starttls: ssl.SSLContext | None
    """Offered by EHLO (STARTTLS); None on implicit-TLS and cleartext listeners."""
    implicit_tls: ssl.SSLContext | None
    """The server socket speaks TLS from the first byte."""
    auth: bool
    """Offers AUTH (once encrypted) whenever some login is configured: ingress.auth can change live."""
    auth_required: bool
    require_starttls: bool
    pregreet: str = "off"
    """The pre-greet test's action on this listener (ingress.pregreet)."""
    dnsbl: bool = True
    """Its clients are looked up in ingress.dnsbl's lists."""
    bare_lf_trusted: str = "normalize"
    """Bare LF in DATA from relay networks and authenticated clients: reject or normalize."""


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    t = cfg.ingress.tls
    if t is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(t.cert_file), str(t.key_file))
    return ctx


def listeners(cfg: Config) -> list[Listener]:
    """Every listener to bind, the main one first (STARTTLS when `ingress.tls` is set; AUTH when configured)."""
    ic = cfg.ingress
    ctx = tls_context(cfg)
    found = [Listener("main", ic.listen_host, ic.listen_port, ctx, None, True, False, False, ic.pregreet.action,
                      True, ic.bare_lf_trusted)]
    for lst in ic.listeners:
        found.append(_listener(lst, ctx, cfg))
    return found


def _listener(lst: ListenerConfig, ctx: ssl.SSLContext | None, cfg: Config) -> Listener:
    starttls = ctx if lst.tls_mode == "starttls" else None
    implicit = ctx if lst.tls_mode == "implicit" else None
    ic = cfg.ingress
    return Listener(lst.name, lst.host, lst.port, starttls, implicit, lst.auth,
                    lst.auth_required, lst.require_tls and lst.tls_mode == "starttls",
                    lst.pregreet or ic.pregreet.action, lst.dnsbl, lst.bare_lf_trusted or ic.bare_lf_trusted)
