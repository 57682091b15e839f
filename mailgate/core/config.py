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
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when protocol is SASL_*.")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretField | None = Field(None, description="SASL password.")
    ca_file: Path | None = Field(None, description="CA bundle for the brokers' certificates.")


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


class LocalBrokerConfig(Strict):
    home: Path = Field(Path(".mailgate/broker"), description="Data dir, log and pid file of the local broker.")
    libs: Path = Field(Path(".mailgate/kafka-libs"), description="Where the Kafka jars are cached.")
    port: int = Field(9092, ge=1, le=65535, description="Client port of the local broker.")
    controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    heap: str = Field("-Xms256m -Xmx512m", description="JVM heap options.")
    start_timeout_s: float = Field(60, gt=0, description="How long to wait for 'Kafka Server started'.")


class TlsServerConfig(Strict):
    cert_file: Path = Field(description="PEM certificate chain offered by STARTTLS.")
    key_file: Path = Field(description="PEM private key.")


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

    @field_validator("relay_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        AddressSet.parse(v)
        return v


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
    concurrency_per_destination: int = Field(10, ge=1, le=1000,
                                             description="Parallel sessions per gateway, per egress replica.")
    partitions_per_destination: int = Field(
        4, ge=1, le=1024, description="mail.outbound partitions one destination's mail spreads over, so that "
        "several egress replicas deliver to it at once; 1 keeps a destination on one partition.")
    messages_per_connection: int = Field(100, ge=1, description="Messages sent over one SMTP connection.")
    helo_name: str = Field(default_factory=socket.getfqdn, description="Name egress sends in EHLO.")
    bounce_from: str = Field("MAILER-DAEMON", description="Local part of the DSN sender (sent as <>).")

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

    @model_validator(mode="after")
    def _ordered(self) -> "SpamConfig":
        if not self.low_threshold <= self.medium_threshold <= self.high_threshold:
            raise ValueError("thresholds must satisfy low <= medium <= high")
        return self


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
    address: str = Field(min_length=1, description="IP address or host name of the gateway server.")
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
    sqlite_path: Path = Field(Path(".mailgate/tracking.sqlite3"), description="The SQLite database file.")
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
