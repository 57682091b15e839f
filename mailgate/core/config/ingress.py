"""Configuration of the SMTP listeners (`ingress`): limits, relay networks, TLS and SMTP AUTH."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mailgate.core.config.base import Strict
from mailgate.core.config.screening import DnsblConfig, PregreetAction, PregreetConfig
from mailgate.core.netaddr import AddressSet


class TlsServerConfig(Strict):
    cert_file: Path = Field(description="PEM certificate chain offered by STARTTLS.")
    key_file: Path = Field(description="PEM private key.")


class AuthUser(Strict):
    """One SMTP AUTH login kept in the configuration (the mail server that relays through mailgate)."""

    username: str = Field(min_length=1, description="Login name given in AUTH PLAIN/LOGIN (compared exactly).")
    password_hash: str = Field(min_length=1, description="scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>, from "
                                                         "`mailgate auth hash`; the password itself is never stored.")
    allowed_senders: list[str] = Field(
        default_factory=list, description="MAIL FROM addresses this login may use: `user@domain` or `@domain`; "
        "empty: any sender (like Postfix's smtpd_sender_login_maps when listed).")

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        from mailgate.core.passwords import is_hash
        if not is_hash(v):
            raise ValueError("not a scrypt$n$r$p$salt$hash value (make one with `mailgate auth hash`)")
        return v


class LoginLimits(Strict):
    """Failed AUTH attempts, counted per client IP address across all sessions of one ingress process."""

    max_failures: int = Field(5, ge=1, le=1000, description="Failures in `window_s` after which AUTH from that "
                                                            "address is answered 421 4.7.0 and the session closed.")
    window_s: float = Field(300, gt=0, description="How long a failure counts against its client address.")
    delay_s: float = Field(1.0, ge=0, description="Pause before each 535 reply, times the failures counted so far.")
    max_delay_s: float = Field(5.0, ge=0, description="Longest pause before a 535 reply.")


class SmtpAuthConfig(Strict):
    """SMTP AUTH on ingress: PLAIN and LOGIN, offered only over TLS; an authenticated client may relay outbound."""

    users: list[AuthUser] = Field(default_factory=list, description="Logins checked against password hashes.")
    smartermail_gateway: str | None = Field(
        None, description="Name of an inbound gateway whose SmarterMail web service checks logins not in `users` "
        "(its url, timeout_s and cache_ttl_s are used; successful logins are cached that long).")
    limits: LoginLimits = Field(default_factory=LoginLimits, description="Slowing and refusing failed logins.")

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.smartermail_gateway is not None


BareLf = Literal["reject", "normalize"]


class ListenerConfig(Strict):
    """A further SMTP listener of ingress (the main one is `listen_host`:`listen_port`)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Name in logs.")
    host: str = Field("127.0.0.1", description="Address the listener binds.")
    port: int = Field(ge=1, le=65535, description="Port the listener binds (587 submission, 465 implicit TLS).")
    tls_mode: Literal["none", "starttls", "implicit"] = Field(
        "starttls", description="none; starttls: offered after EHLO; implicit: TLS from the first byte (port 465). "
        "starttls and implicit need `ingress.tls`.")
    require_tls: bool = Field(False, description="starttls: refuse MAIL before STARTTLS (530).")
    auth: bool = Field(True, description="Offer AUTH PLAIN/LOGIN here (only once the session is encrypted).")
    auth_required: bool = Field(False, description="Refuse MAIL/RCPT/DATA before AUTH (a submission port).")
    pregreet: PregreetAction | None = Field(
        None, description="The pre-greet test here (off, ignore, enforce, drop); default: ingress.pregreet.action. "
        "Postscreen's advice: only on the port 25 service, not where users submit mail.")
    dnsbl: bool = Field(True, description="Ask ingress.dnsbl's lists for this listener's clients (set false on a "
                                          "submission port when ingress.dnsbl.action is connect).")
    bare_lf_trusted: BareLf | None = Field(
        None, description="Bare LF in DATA from relay networks and authenticated clients here; default: "
        "ingress.bare_lf_trusted.")


class IngressConfig(Strict):
    listen_host: str = Field("127.0.0.1", description="Address the SMTP listener binds.")
    listen_port: int = Field(2525, ge=1, le=65535, description="Port the SMTP listener binds.")
    hostname: str = Field(default_factory=socket.getfqdn, description="Name in the greeting and Received header.")
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                   description="Largest message accepted (SIZE and DATA).")
    max_recipients: int = Field(100, ge=1, le=10000, description="Recipients per message before 452 4.5.3.")
    idle_timeout_s: float = Field(300, gt=0, description="Idle client is closed with 421 4.4.2 after this.")
    max_errors: int = Field(10, ge=1, description="Protocol errors in a session before 421.")
    bare_lf: BareLf = Field("reject", description="Bare LF (or CR) in DATA from other clients (the Internet): "
                            "550 5.5.2 (the SMTP smuggling defense) or made CRLF.")
    bare_lf_trusted: BareLf = Field(
        "normalize", description="Bare LF (or CR) in DATA from relay networks and authenticated clients: made CRLF "
        "(as Postfix exempts $mynetworks: smtpd_forbid_bare_newline_exclusions), or 550 5.5.2; per listener: "
        "`listeners[].bare_lf_trusted`.")
    relay_networks: list[str] = Field(default_factory=list,
                                      description="Clients allowed to relay outbound: IP, a.b.c.d-a.b.c.e, CIDR.")
    publish_timeout_s: float = Field(10, gt=0, description="Longest wait for Kafka's ack before 451 4.3.0.")
    tls: TlsServerConfig | None = Field(None, description="STARTTLS certificate; no STARTTLS when absent.")
    client_connection_count_limit: int = Field(
        50, ge=0, description="Simultaneous connections one client IP may have (Postfix "
        "smtpd_client_connection_count_limit); one more is answered 421 4.7.0 and closed. 0: no limit.")
    client_message_rate_limit: int = Field(
        0, ge=0, description="Messages (MAIL FROM) one client IP may send per client_rate_time_unit_s, over all its "
        "connections (Postfix smtpd_client_message_rate_limit); one more is answered 421 4.7.0. 0: no limit.")
    client_rate_time_unit_s: float = Field(60, gt=0, description="Time unit of the rate limits (Postfix "
                                                                   "anvil_rate_time_unit).")
    max_messages_per_connection: int = Field(
        1000, ge=0, description="Messages (MAIL FROM) one connection may send; one more is answered 421 4.7.0 and "
        "the connection closed (the client reconnects). 0: no limit.")
    max_session_s: float = Field(
        3600, ge=0, description="Longest SMTP session, active or not; then 421 4.7.0 and the connection is "
        "closed (a message in DATA is not accepted). 0: no limit.")
    client_limit_exceptions: list[str] | None = Field(
        None, description="Clients the per-client limits do not apply to: IP, range or CIDR (Postfix "
        "smtpd_client_event_limit_exceptions); default: relay_networks, as Postfix's default $mynetworks.")
    reject_non_fqdn_sender: bool = Field(
        False, description="Refuse MAIL FROM whose domain is not a fully qualified name (no dot), as Postfix's "
        "reject_non_fqdn_sender; off by default, as in Postfix (swaks's default sender user@host passes).")
    auth: SmtpAuthConfig = Field(default_factory=SmtpAuthConfig,
                                 description="SMTP AUTH (offered on the main listener too, after STARTTLS).")
    pregreet: PregreetConfig = Field(default_factory=PregreetConfig,
                                     description="Postscreen's pre-greet test (main listener; others: their own).")
    dnsbl: DnsblConfig = Field(default_factory=DnsblConfig,
                               description="DNS block and allow lists asked at connect, with weights and a "
                                           "threshold; no sites: none asked.")
    listeners: list[ListenerConfig] = Field(default_factory=list,
                                            description="Further listeners (submission, implicit TLS), each with "
                                                        "its own TLS and AUTH settings.")

    @field_validator("relay_networks", "client_limit_exceptions")
    @classmethod
    def _networks(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            AddressSet.parse(v)
        return v

    @model_validator(mode="after")
    def _listeners_tls(self) -> "IngressConfig":
        for lst in self.listeners:
            if lst.tls_mode != "none" and self.tls is None:
                raise ValueError(f"listener {lst.name}: tls_mode {lst.tls_mode} needs ingress.tls")
        return self
