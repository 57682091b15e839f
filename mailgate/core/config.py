"""Typed configuration: one YAML file, validated before any port is bound.

Reads: the YAML file named by `--config`. Emits: a frozen `Config` value, or a `ConfigError` whose message names
each bad key by its path (`outbound_gateways.0.port: Input should be less than or equal to 65535`).
Every model forbids unknown keys; units are in field names (`_s`, `_bytes`).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)

from mailgate.core.netaddr import AddressSet, parse_address_spec


class ConfigError(Exception):
    """The configuration file is missing, unreadable, or invalid; the message lists every problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """A secret given by reference (`env` or `file`) or, for development, inline (`value`). Never printed."""

    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    file: Path | None = Field(None, description="Path of a file whose first line is the secret.")
    value: SecretStr | None = Field(None, description="The secret inline (development only).")
    sealed: str | None = Field(None, description="The secret sealed with MAILGATE_SECRET_KEY (as stored in Kafka).")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Secret":
        given = [k for k in ("env", "file", "value", "sealed") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file, value, sealed")
        return self

    def reveal(self) -> str:
        """The clear text, read at the moment of use."""
        if self.value is not None:
            return self.value.get_secret_value()
        if self.sealed is not None:
            from mailgate.core.secrets import unseal
            return unseal(self.sealed)
        if self.env is not None:
            if self.env not in os.environ:
                raise ConfigError(f"secret environment variable {self.env} is not set")
            return os.environ[self.env]
        assert self.file is not None
        return self.file.read_text().splitlines()[0] if self.file.exists() else ""

    def __repr__(self) -> str:
        return "Secret(env=%r, file=%r, value=%s, sealed=%s)" % (
            self.env, self.file, "'**********'" if self.value else None, "'...'" if self.sealed else None)


def _secret(v: object) -> object:
    """A bare string in YAML is an inline secret."""
    return {"value": v} if isinstance(v, str) else v


SecretField = Annotated[Secret, BeforeValidator(_secret)]
"""A secret: {env: NAME} | {file: PATH} | {value: TEXT}; a bare string is {value: TEXT}."""


class KafkaSecurity(Strict):
    """How every mailgate client (stages, operator tools, admin page) connects to Kafka: one block for all of them."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when protocol is SASL_* (required then).")
    sasl_username: str | None = Field(None, description="SASL user name (required with SASL_*).")
    sasl_password: SecretField | None = Field(None, description="SASL password (required with SASL_*).")
    ca_file: Path | None = Field(None, description="CA bundle (PEM) for the brokers' certificates; "
                                                   "none = the system's trusted CAs.")
    cert_file: Path | None = Field(None, description="Client certificate chain (PEM) for brokers that require "
                                                     "TLS client authentication (SSL, SASL_SSL).")
    key_file: Path | None = Field(None, description="Private key (PEM, unencrypted) of cert_file.")

    @model_validator(mode="after")
    def _complete(self) -> "KafkaSecurity":
        if self.protocol.startswith("SASL_") and not (self.sasl_mechanism and self.sasl_username
                                                      and self.sasl_password):
            raise ValueError(f"protocol {self.protocol} needs sasl_mechanism, sasl_username and sasl_password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.cert_file is not None and not self.protocol.endswith("SSL"):
            raise ValueError(f"cert_file needs protocol SSL or SASL_SSL, not {self.protocol}")
        return self


class KafkaConfig(Strict):
    bootstrap_servers: list[str] = Field(["127.0.0.1:9092"], min_length=1, description="host:port of brokers.")
    replication_factor: int = Field(1, ge=1, le=7, description="Replication factor of mailgate's topics.")
    min_insync_replicas: int = Field(1, ge=1, le=7, description="min.insync.replicas of mailgate's topics.")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of each mail topic (caps stage replicas).")
    events_retention_s: int = Field(30 * 86400, ge=3600, description="How long the audit log keeps events.")
    mail_retention_s: int = Field(8 * 86400, ge=3600,
                                  description="How long mail topics keep records (longer than queue lifetime).")
    compression: Literal["zstd", "lz4", "gzip", "none"] = Field("zstd", description="Producer compression.")
    security: KafkaSecurity = Field(default_factory=KafkaSecurity, description="Client security settings.")

    @model_validator(mode="after")
    def _isr(self) -> "KafkaConfig":
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError("min_insync_replicas cannot exceed replication_factor")
        return self


class LocalBrokerSaslSsl(Strict):
    """Makes the local broker's client port a SASL_SSL listener (SCRAM-SHA-512), to run or test a secured set-up.

    The SCRAM user is `kafka.security.sasl_username` with `kafka.security.sasl_password`, created when the data dir
    is formatted (a later password change needs a fresh data dir)."""

    cert_file: Path = Field(description="The broker's certificate chain (PEM), valid for 127.0.0.1.")
    key_file: Path = Field(description="The broker's private key (PEM, unencrypted).")
    require_client_cert: bool = Field(False, description="Also require a client certificate signed by "
                                                         "kafka.security.ca_file (ssl.client.auth=required).")


def cache_dir() -> Path:
    """The per-user directory for the local broker's jars and data: $MAILGATE_CACHE_DIR, else
    $XDG_CACHE_HOME/mailgate, else ~/.cache/mailgate. Never the current directory."""
    if os.environ.get("MAILGATE_CACHE_DIR"):
        return Path(os.environ["MAILGATE_CACHE_DIR"]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache").absolute() / "mailgate"


def _in_cache(v: object) -> object:
    """A relative path is relative to cache_dir(), so that no command depends on the current directory."""
    p = Path(v).expanduser() if isinstance(v, (str, Path)) else v
    return cache_dir() / p if isinstance(p, Path) and not p.is_absolute() else p


class LocalBrokerConfig(Strict):
    home: Annotated[Path, BeforeValidator(_in_cache)] = Field(
        default_factory=lambda: cache_dir() / "broker",
        description="Data dir, log and pid file of the local broker (and the processor's faust data dir); "
                    "a relative path is relative to the per-user cache (~/.cache/mailgate or $MAILGATE_CACHE_DIR).")
    libs: Annotated[Path, BeforeValidator(_in_cache)] = Field(
        default_factory=lambda: cache_dir() / "kafka-libs",
        description="Where the Kafka jars are cached (fetched once with mvn); relative: as `home`.")
    port: int = Field(9092, ge=1, le=65535, description="Client port of the local broker.")
    controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    heap: str = Field("-Xms256m -Xmx512m", description="JVM heap options.")
    start_timeout_s: float = Field(60, gt=0, description="How long to wait for 'Kafka Server started'.")
    sasl_ssl: LocalBrokerSaslSsl | None = Field(None, description="Serve clients over SASL_SSL instead of "
                                                                  "PLAINTEXT (needs kafka.security SCRAM-SHA-512).")


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


class IngressConfig(Strict):
    listen_host: str = Field("127.0.0.1", description="Address the SMTP listener binds.")
    listen_port: int = Field(2525, ge=1, le=65535, description="Port the SMTP listener binds.")
    hostname: str = Field(default_factory=socket.getfqdn, description="Name in the greeting and Received header.")
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                   description="Largest message accepted (SIZE and DATA).")
    max_recipients: int = Field(100, ge=1, le=10000, description="Recipients per message before 452 4.5.3.")
    idle_timeout_s: float = Field(300, gt=0, description="Idle client is closed with 421 4.4.2 after this.")
    max_errors: int = Field(10, ge=1, description="Protocol errors in a session before 421.")
    bare_lf: Literal["reject", "normalize"] = Field("reject", description="Bare LF in DATA: 550 5.5.2 or CRLF.")
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


class SpoolConfig(Strict):
    delivery_delay_s: int = Field(0, ge=0, le=86400, description="Hold before the first delivery attempt.")


class DeliveryConfig(Strict):
    connect_timeout_s: float = Field(30, gt=0, description="TCP connect timeout.")
    greeting_timeout_s: float = Field(60, gt=0, description="Wait for the server's 220.")
    command_timeout_s: float = Field(120, gt=0, description="Wait for a reply to each command.")
    data_timeout_s: float = Field(600, gt=0, description="Wait for the reply after the final dot.")
    retry_schedule_s: list[int] = Field([300, 600, 1200, 2400, 3600], min_length=1,
                                        description="Delay of each retry tier; the last repeats.")
    max_queue_lifetime_s: int = Field(5 * 86400, ge=60, description="Outbound mail expires after this.")
    backup_mx_queue_lifetime_s: int = Field(7 * 86400, ge=60, description="Backup MX mail expires after this.")
    concurrency_per_destination: int = Field(20, ge=1, le=1000,
                                             description="Parallel sessions per gateway, per egress replica "
                                             "(Postfix's default_destination_concurrency_limit is 20).")
    partitions_per_destination: int = Field(
        4, ge=1, le=1024, description="mail.outbound partitions one destination's mail spreads over, so that "
        "several egress replicas deliver to it at once; 1 keeps a destination on one partition.")
    messages_per_connection: int = Field(100, ge=1, description="Messages sent over one SMTP connection.")
    delivered_index_margin_s: int = Field(
        86400, ge=0, description="How much longer than a message can come back (the longest queue lifetime, or "
        "kafka.mail_retention_s for a replay) egress remembers it was delivered, in mail.delivered and in memory.")
    helo_name: str = Field(default_factory=socket.getfqdn, description="Name egress sends in EHLO.")
    bounce_from: str = Field("MAILER-DAEMON", description="Local part of the DSN sender (sent as <>).")
    parked_mail_expires: bool = Field(False, description="Mail held by an operator or waiting for a suspended "
                                      "destination expires at the end of its queue lifetime like other queued mail; "
                                      "by default the time it waits does not count.")
    commit_interval_s: float = Field(
        0.5, gt=0, le=300, description="Egress commits its consumer offsets at most this often while mail flows "
        "(always on a rebalance and at shutdown): a commit is a broker round trip. A record delivered but not yet "
        "committed when egress dies is re-read and suppressed by the delivered index, not sent again.")
    max_records_in_flight: int = Field(
        200, ge=1, le=100_000, description="Records one egress replica handles at once, over all partitions and "
        "destinations; it fetches more as they finish. Bounds memory (each holds its message body).")
    max_bytes_in_flight: int = Field(
        16 * 1024 * 1024, ge=1024 * 1024, description="Bytes of records (each record's value as fetched, its "
        "message inside) one egress replica handles at once; each takes a few times its size in memory while it is "
        "sent (decoded, dot-stuffed); past it, it fetches more only as they finish. Bounds memory with "
        "large messages; one record is always taken, however large.")

    @field_validator("retry_schedule_s")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s <= 0 for s in v):
            raise ValueError("every retry delay must be positive")
        return v


class DomainVerification(Strict):
    mode: Literal["specified_domains", "all_but_specified_domains"] = Field(
        "specified_domains", description="Accept the listed domains, or every domain but them.")
    domains: list[str] = Field(default_factory=list, description="Domain names, one per entry.")

    @field_validator("domains")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [d.strip().lower().rstrip(".") for d in v]

    def accepts(self, domain: str) -> bool:
        listed = domain.lower().rstrip(".") in self.domains
        return listed if self.mode == "specified_domains" else not listed


class SmarterMailConfig(Strict):
    enabled: bool = Field(False, description="The primary is a SmarterMail server reached by its web services.")
    url: str = Field("", description="The primary's webmail URL, e.g. https://mail.example.com.")
    username: str = Field("", description="Login for the web services.")
    password: SecretField | None = Field(None, description="Password for the web services.")
    user_verification: Literal["none", "web_service"] = Field("none", description="How recipients are checked.")
    cache_ttl_s: int = Field(600, ge=1, description="How long answers are cached (10 minutes, as documented).")
    timeout_s: float = Field(5, gt=0, description="HTTP timeout for each web-service call.")


class SpamAction(Strict):
    action: Literal["none", "delete", "prefix_subject", "add_header", "quarantine"] = Field(
        description="What to do with the message.")
    text: str = Field("", description="Subject prefix for prefix_subject.")
    header_name: str = Field("", description="Header name for add_header.")
    header_value: str = Field("", description="Header value for add_header.")


class SpamActions(Strict):
    low: list[SpamAction] = Field(default_factory=list, description="Actions for spam level Low.")
    medium: list[SpamAction] = Field(default_factory=list, description="Actions for spam level Medium.")
    high: list[SpamAction] = Field(default_factory=list, description="Actions for spam level High.")
    none: list[SpamAction] = Field(default_factory=list, description="Actions for mail not marked as spam.")


class SpamScorer(Strict):
    kind: Literal["spamd", "rspamd", "trusted_header"] = Field(description="Which scanner.")
    name: str = Field("", description="Name in events; defaults to the kind.")
    host: str = Field("127.0.0.1", description="spamd host.")
    port: int = Field(783, ge=1, le=65535, description="spamd port.")
    url: str = Field("http://127.0.0.1:11333", description="rspamd controller base URL (/checkv2 is appended).")
    trusted_ips: list[str] = Field(default_factory=list,
                                   description="trusted_header: clients whose X-Spam-Score/X-Spam-Status is believed.")
    weight: float = Field(1.0, ge=0, description="Multiplier of this scorer's score in the total.")
    timeout_s: float = Field(15, gt=0, description="Longest wait for the scanner.")

    @field_validator("trusted_ips")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        AddressSet.parse(v)
        return v


class SpamConfig(Strict):
    enabled: bool = Field(False, description="Score inbound mail and apply the gateway's spam actions.")
    scorers: list[SpamScorer] = Field(default_factory=list, description="Scanners whose weighted scores are summed.")
    low_threshold: float = Field(3.0, description="Total score from which mail is spam Low.")
    medium_threshold: float = Field(5.0, description="Total score from which mail is spam Medium.")
    high_threshold: float = Field(10.0, description="Total score from which mail is spam High.")
    on_scanner_failure: Literal["retry", "pass"] = Field(
        "retry", description="retry: the message waits in Kafka until scanners answer; pass: deliver unscored.")
    standard_headers: bool = Field(True, description="Add X-Spam-Level and X-Spam-Score to scored mail.")
    max_scan_bytes: int = Field(512 * 1024, ge=1024, description="Larger messages are scanned by their head only.")
    scan_outbound: bool = Field(
        False, description="Also score outbound mail (relayed by an authenticated login or a relay network), giving "
        "the scanners the login: rspamd's User header, spamd's User (its per-user preferences). It is scored and "
        "recorded (MessageClassified, X-Spam headers); no spam action applies to it (those are the inbound "
        "gateways'). Off by default: outbound mail comes from your own mail server, which is trusted to have "
        "checked its users, and scanning it costs scanner time on every message sent; turn it on to catch a "
        "compromised account sending spam.")

    @model_validator(mode="after")
    def _ordered(self) -> "SpamConfig":
        if not self.low_threshold <= self.medium_threshold <= self.high_threshold:
            raise ValueError("thresholds must satisfy low <= medium <= high")
        return self


class DnsConfig(Strict):
    """The resolver the processor asks for SPF, DKIM and DMARC records (answers cached for their TTLs)."""

    nameservers: list[str] = Field(default_factory=list, description="IP addresses of recursive resolvers; "
                                                                     "empty: the system's (/etc/resolv.conf).")
    port: int = Field(53, ge=1, le=65535, description="Port of the nameservers.")
    timeout_s: float = Field(3, gt=0, description="Longest wait for one lookup (all nameservers together).")
    cache_entries: int = Field(10_000, ge=0, description="DNS answers kept (for their TTLs); 0: no cache.")


DispositionAction = Literal["none", "discard", "low", "medium", "high"]


class SenderAuthScores(Strict):
    """Score each result adds to the spam total (a scorer named `sender_auth` in MessageClassified)."""

    spf_pass: float = Field(0.0, description="SPF pass.")
    spf_fail: float = Field(2.0, description="SPF fail (-all).")
    spf_softfail: float = Field(1.0, description="SPF softfail (~all).")
    spf_neutral: float = Field(0.0, description="SPF neutral (?all).")
    spf_none: float = Field(0.5, description="No SPF record.")
    dkim_pass: float = Field(0.0, description="At least one valid DKIM signature.")
    dkim_fail: float = Field(1.5, description="Signatures present, none valid.")
    dkim_none: float = Field(0.0, description="No DKIM signature.")
    dmarc_pass: float = Field(0.0, description="DMARC pass (an aligned SPF or DKIM pass).")
    dmarc_fail: float = Field(3.0, description="DMARC fail.")
    temperror: float = Field(0.0, description="Any check that could not finish for a DNS failure.")


class SenderAuthConfig(Strict):
    """SPF, DKIM and DMARC checks of inbound mail in the processor, with an Authentication-Results header."""

    enabled: bool = Field(False, description="Check inbound mail and add Authentication-Results (RFC 8601).")
    authserv_id: str = Field("", description="The authserv-id in Authentication-Results; empty: ingress.hostname. "
                                             "Incoming headers claiming it are removed as forged.")
    dns: DnsConfig = Field(default_factory=DnsConfig, description="Resolver for SPF, DKIM and DMARC lookups.")
    on_dns_failure: Literal["temperror", "pass"] = Field(
        "temperror", description="A lookup that fails (no answer, SERVFAIL): record temperror, or count the check "
        "as passed. Mail flows either way.")
    scores: SenderAuthScores = Field(default_factory=SenderAuthScores, description="Spam score per result.")
    dmarc_reject_action: DispositionAction = Field(
        "none", description="DMARC fail with p=reject: none (header only), discard (MessageDiscarded), or raise the "
        "spam score by that level's threshold so the gateway's spam actions for it apply.")
    dmarc_quarantine_action: DispositionAction = Field("none", description="The same for DMARC fail with "
                                                                           "p=quarantine.")

    @field_validator("dns")
    @classmethod
    def _nameservers(cls, v: DnsConfig) -> DnsConfig:
        for ns in v.nameservers:
            parse_address_spec(ns)
        return v


class DkimKey(Strict):
    """A DKIM signing key of one sender domain."""

    domain: str = Field(min_length=1, description="Sender domain (d=); mail whose From domain is this or a "
                                                  "subdomain is signed with this key.")
    selector: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Selector (s=).")
    private_key: SecretField = Field(description="PEM (PKCS#8) RSA or Ed25519 private key, as a secret reference.")


DEFAULT_SIGNED_HEADERS = ["From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
                          "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References"]


class DkimSigningConfig(Strict):
    """DKIM signatures egress adds to outbound mail just before sending it (RFC 6376)."""

    keys: list[DkimKey] = Field(default_factory=list, description="One key per signing domain.")
    headers: list[str] = Field(default_factory=lambda: list(DEFAULT_SIGNED_HEADERS),
                               description="Header fields signed (RFC 6376 section 5.4.1); From is always signed.")
    oversign: bool = Field(True, description="Sign each listed header once more than it occurs, so none can be "
                                             "added after signing.")


class InboundGateway(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Unique name.")
    mode: Literal["domain_forward", "backup_mx"] = Field(description="Domain Forward or Backup MX.")
    primary_addresses: list[str] = Field(min_length=1,
                                         description="The primary's IPs: single, a.b.c.d-a.b.c.e range, or CIDR.")
    primary_port: int = Field(25, ge=1, le=65535, description="The primary's SMTP port.")
    status: Literal["enabled", "disabled"] = Field("enabled", description="A disabled gateway accepts nothing.")
    description: str = Field("", description="A friendly name.")
    smtp_user_verification: bool = Field(False, description="Verify recipients exist (Domain Forward).")
    domain_verification: DomainVerification = Field(default_factory=DomainVerification,
                                                    description="Which domains this gateway accepts mail for.")
    smartermail: SmarterMailConfig = Field(default_factory=SmarterMailConfig,
                                           description="SmarterMail gateway mode.")
    defer_while_primary_up: bool = Field(False, description="Backup MX: 451 at RCPT while the primary is up.")
    spam_actions: SpamActions = Field(default_factory=SpamActions, description="Actions per spam level.")

    @field_validator("primary_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for spec in v:
            parse_address_spec(spec)
        return v

    def primary_hosts(self) -> list[str]:
        """Every address of the primary, in the order given, ranges and blocks expanded."""
        return [str(ip) for spec in self.primary_addresses for ip in parse_address_spec(spec).hosts()]


class OutboundGateway(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Unique name.")
    mode: Literal["round_robin", "specific_domains"] = Field("round_robin",
                                                             description="Pool membership or per-domain use.")
    address: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:-]+$",
                         description="IP address or host name of the gateway server (ASCII; an IDN in its "
                                     "xn-- form).")
    port: int = Field(25, ge=1, le=65535, description="SMTP port of the gateway server.")
    encryption: Literal["none", "ssl", "tls"] = Field("none", description="none, ssl (implicit), tls (STARTTLS).")
    tls_verify: bool = Field(True, description="Verify the server certificate.")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server certificate with.")
    status: Literal["enabled", "disabled"] = Field("enabled", description="A disabled gateway takes no new mail.")
    auth_username: str | None = Field(None, description="AUTH user name; no AUTH when absent.")
    auth_password: SecretField | None = Field(None, description="AUTH password.")
    verify_before_save: bool = Field(False, description="Connect, EHLO, TLS and AUTH before accepting the entry.")
    weight: int = Field(1, ge=1, le=1000, description="Share of round-robin traffic.")
    sender_domains: list[str] = Field(default_factory=list,
                                      description="specific_domains: sender domains routed through this gateway.")

    @model_validator(mode="after")
    def _auth_pair(self) -> "OutboundGateway":
        if (self.auth_username is None) != (self.auth_password is None):
            raise ValueError("auth_username and auth_password go together")
        if self.mode == "specific_domains" and not self.sender_domains:
            raise ValueError("specific_domains gateway needs sender_domains")
        return self


class AdminConfig(Strict):
    """`mailgate admin`: the administration web page and HTTP API."""

    listen_host: str = Field("127.0.0.1", description="Address the admin HTTP server binds.")
    listen_port: int = Field(8025, ge=1, le=65535, description="Port the admin HTTP server binds.")
    username: str = Field("admin", min_length=1, description="The administrator's login name.")
    password_hash: str = Field("", description="scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>, from "
                                               "`mailgate admin --hash-password`; empty: nobody can log in.")
    session_ttl_s: int = Field(3600, ge=60, le=7 * 86400, description="A session ends this long after login.")


class MetricsConfig(Strict):
    """Each stage's HTTP endpoint: Prometheus `/metrics`, `/healthz` (alive) and `/readyz` (able to do its job)."""

    enabled: bool = Field(True, description="Serve the endpoint; a port already taken is logged and mail flows on.")
    listen_host: str = Field("127.0.0.1", description="Address the endpoint binds (0.0.0.0 for a remote scraper).")
    ingress_port: int = Field(9101, ge=0, le=65535, description="Port of the ingress stage; 0: any free port "
                                                                "(the bound port is logged).")
    processor_port: int = Field(9102, ge=0, le=65535, description="Port of the processor stage; 0: any free port.")
    egress_port: int = Field(9103, ge=0, le=65535, description="Port of the egress stage; 0: any free port. Give "
                                                               "each replica on one host its own ports (or 0).")
    tracker_port: int = Field(9104, ge=0, le=65535, description="Port of `mailgate tracker`; 0: any free port.")

    def port(self, stage: str) -> int:
        return getattr(self, f"{stage}_port")


class TrackingConfig(Strict):
    """`mailgate tracker`: the message-tracking read model projected from mail.events, and where it is stored."""

    store: Literal["sqlite", "postgresql"] = Field(
        "sqlite", description="sqlite: one file on this machine (WAL mode); postgresql: a server several machines "
                              "share.")
    sqlite_path: Annotated[Path, BeforeValidator(_in_cache)] = Field(
        default_factory=lambda: cache_dir() / "tracking.sqlite3",
        description="The SQLite database file; a relative path is relative to the per-user cache (~/.cache/mailgate "
                    "or $MAILGATE_CACHE_DIR, as local_broker.home), so every command finds it from any directory.")
    postgresql_dsn: SecretField | None = Field(
        None, description="libpq connection string (e.g. `host=db dbname=mailgate user=mailgate`); a secret, as it "
                          "may hold a password.")
    batch_max_records: int = Field(5000, ge=1, le=100000,
                                   description="Events projected per store transaction at most.")


class Config(Strict):
    node_name: str = Field(default_factory=socket.gethostname, description="Name of this node in events.")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig, description="Kafka connection and topic settings.")
    local_broker: LocalBrokerConfig = Field(default_factory=LocalBrokerConfig, description="Local dev broker.")
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="SMTP listener.")
    spool: SpoolConfig = Field(default_factory=SpoolConfig, description="Spool settings.")
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig, description="Egress delivery engine.")
    spam: SpamConfig = Field(default_factory=SpamConfig, description="Spam scoring of inbound mail.")
    inbound_gateways: list[InboundGateway] = Field(default_factory=list, description="Backup MX / Domain Forward.")
    outbound_gateways: list[OutboundGateway] = Field(default_factory=list, description="Outbound relays.")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="Administration web page and API.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig,
                                   description="Prometheus metrics and health endpoints of the stages.")
    sender_auth: SenderAuthConfig = Field(default_factory=SenderAuthConfig,
                                          description="SPF, DKIM and DMARC checks of inbound mail.")
    dkim_signing: DkimSigningConfig = Field(default_factory=DkimSigningConfig,
                                            description="DKIM signing of outbound mail by egress.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="Message tracking: the read model `mailgate tracker` keeps.")

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        for kind in ("inbound_gateways", "outbound_gateways"):
            names = [g.name for g in getattr(self, kind)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate name(s) {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _auth_directory(self) -> "Config":
        name = self.ingress.auth.smartermail_gateway
        if name is not None:
            gw = next((g for g in self.inbound_gateways if g.name == name), None)
            if gw is None or not gw.smartermail.url or gw.smartermail.password is None:
                raise ValueError(f"ingress.auth.smartermail_gateway: no inbound gateway {name!r} with "
                                 "smartermail url and password")
        return self

    def inbound_gateway_for(self, domain: str) -> InboundGateway | None:
        """The first enabled inbound gateway whose domain verification accepts `domain`."""
        for gw in self.inbound_gateways:
            if gw.status == "enabled" and gw.domain_verification.accepts(domain):
                return gw
        return None


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def parse_config(data: object, source: str = "<config>") -> Config:
    try:
        return Config.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid configuration\n{_format_errors(err)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML file at `path`."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as err:
        raise ConfigError(f"{p}: cannot read configuration: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return parse_config(data, str(p))


__all__ = ["Config", "ConfigError", "InboundGateway", "MetricsConfig", "OutboundGateway", "load_config", "parse_config"]
