"""Typed configuration: one YAML file, validated before any port is bound.

Reads: the YAML file named by `--config`. Emits: a frozen `Config` value, or a `ConfigError` whose message names
each bad key by its path (`outbound_gateways.0.port: Input should be less than or equal to 65535`).
Every model forbids unknown keys; units are in field names (`_s`, `_bytes`). The sections' models live in one module
each (base, kafka, ingress, delivery, spam, antivirus, gateways, operations); this one assembles `Config` and reads
the file.
"""
from __future__ import annotations

import socket
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from mailgate.core.config.antivirus import (AntivirusConfig, AttachmentRule, AttachmentRules, ClamdScanner,
                                            VirusActions)
from mailgate.core.config.base import ConfigError, Secret, SecretField, Strict, cache_dir
from mailgate.core.config.delivery import DeliveryConfig, DkimKey, DkimSigningConfig, SpoolConfig
from mailgate.core.config.gateways import (AccessRule, DomainVerification, InboundGateway, OutboundGateway,
                                           SmarterMailConfig)
from mailgate.core.config.ingress import (AuthUser, IngressConfig, ListenerConfig, LoginLimits, SmtpAuthConfig,
                                          TlsServerConfig)
from mailgate.core.config.kafka import KafkaConfig, KafkaSecurity, LocalBrokerConfig, LocalBrokerSaslSsl
from mailgate.core.config.operations import AdminConfig, MetricsConfig, TrackingConfig
from mailgate.core.config.screening import DnsblConfig, DnsListSite, PregreetConfig
from mailgate.core.config.spam import (DnsConfig, SenderAuthConfig, SenderAuthScores, SpamAction, SpamActions,
                                       SpamConfig, SpamScorer)


class Config(Strict):
    node_name: str = Field(default_factory=socket.gethostname, description="Name of this node in events.")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig, description="Kafka connection and topic settings.")
    local_broker: LocalBrokerConfig = Field(default_factory=LocalBrokerConfig, description="Local dev broker.")
    ingress: IngressConfig = Field(default_factory=IngressConfig, description="SMTP listener.")
    spool: SpoolConfig = Field(default_factory=SpoolConfig, description="Spool settings.")
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig, description="Egress delivery engine.")
    spam: SpamConfig = Field(default_factory=SpamConfig, description="Spam scoring of inbound mail.")
    antivirus: AntivirusConfig = Field(default_factory=AntivirusConfig,
                                       description="Virus scanning with clamd, in the processor and at DATA.")
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


def parse_config(data: object, source: str = "<config>", stored: bool = False) -> Config:
    """`data` as a Config; `stored`: it holds gateways read back from mail.config, which earlier releases may have
    written under looser rules (see `gateways.domain_names`)."""
    try:
        return Config.model_validate(data if data is not None else {}, context={"stored": stored})
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

__all__ = ["AccessRule", "AdminConfig", "AntivirusConfig", "AttachmentRule", "AttachmentRules", "AuthUser",
           "ClamdScanner", "Config", "ConfigError", "DeliveryConfig", "DkimKey", "DkimSigningConfig", "DnsConfig",
           "DnsListSite", "DnsblConfig", "DomainVerification", "InboundGateway", "IngressConfig", "KafkaConfig",
           "KafkaSecurity", "ListenerConfig", "LocalBrokerConfig", "LocalBrokerSaslSsl", "LoginLimits", "MetricsConfig",
           "OutboundGateway", "PregreetConfig", "Secret", "SecretField", "SenderAuthConfig", "SenderAuthScores",
           "SmarterMailConfig", "SmtpAuthConfig", "SpamAction", "SpamActions", "SpamConfig", "SpamScorer",
           "SpoolConfig", "TlsServerConfig", "TrackingConfig", "VirusActions", "cache_dir", "load_config",
           "parse_config"]
