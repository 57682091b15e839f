"""Configuration of the gateways (`inbound_gateways`, `outbound_gateways`): Backup MX and Domain Forward
with their domain and user verification, and the outbound relays with their AUTH and sender domains."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mailgate.core.config.antivirus import VirusActions
from mailgate.core.config.base import SecretField, Strict
from mailgate.core.config.spam import SpamActions
from mailgate.core.netaddr import AddressSet, parse_address_spec

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def domain_names(v: list[str], info: ValidationInfo) -> list[str]:
    """Each entry as compared with mail: trimmed, lower case, without a trailing dot. An entry that is not a domain
    name (ASCII labels of letters, digits, hyphens; an IDN in its xn-- form) is refused, except in gateways read back
    from mail.config (`stored` in the validation context): an earlier release stored them unchecked, and such an
    entry, which never matched any mail, is dropped with a log line instead of refusing the whole configuration."""
    out = []
    for raw in v:
        d = raw.strip().lower().rstrip(".")
        if len(d) <= 253 and all(_LABEL.match(label) for label in d.split(".")):
            out.append(d)
        elif info.context and info.context.get("stored"):
            log.warning("mail.config: ignored %r in a gateway's %s: not a domain name", raw, info.field_name)
        else:
            raise ValueError(f"{raw!r} is not a domain name (letters, digits and hyphens between dots; an IDN in "
                             "its xn-- form)")
    return out



WEB_SERVICE_NEEDS_SMARTERMAIL = ("domain_verification.mode web_service needs SmarterMail gateway mode "
                                 "(smartermail.enabled, url and password)")
"""The refusal of a gateway whose domain verification asks a web service it is not given (the admin API answers it
409: the document is well-formed, its settings conflict)."""

class DomainVerification(Strict):
    mode: Literal["specified_domains", "all_but_specified_domains", "web_service"] = Field(
        "specified_domains", description="Accept the listed domains, every domain but them, or (web_service, "
        "SmarterMail gateway mode only) the domains the SmarterMail server reports plus the listed ones.")
    domains: list[str] = Field(default_factory=list, description="Domain names, one per entry (web_service: "
                               "accepted besides the domains the SmarterMail server reports).")
    excluded_domains: list[str] = Field(default_factory=list, description="web_service only: domains refused even "
                                        "when the SmarterMail server reports them.")
    when_never_fetched: Literal["tempfail", "configured_lists"] = Field(
        "tempfail", description="web_service only, while this process has never fetched the server's domain list "
        "(first start with the web service down): tempfail answers 451 4.4.3 for every domain the lists do not "
        "decide; configured_lists accepts the listed domains alone.")

    _domains = field_validator("domains", "excluded_domains")(domain_names)

    @model_validator(mode="after")
    def _lists(self) -> "DomainVerification":
        if self.mode != "web_service" and self.excluded_domains:
            raise ValueError("excluded_domains is only for mode web_service (all_but_specified_domains excludes "
                             "with domains)")
        both = sorted(set(self.domains) & set(self.excluded_domains))
        if both:
            raise ValueError(f"{', '.join(both)}: both in domains and excluded_domains")
        return self

    def accepts(self, domain: str) -> bool:
        """What the configured lists alone decide: for web_service, only the listed additions (the server's list is
        asked by `mailgate.mail.directory.domains`)."""
        listed = domain.lower().rstrip(".") in self.domains
        return listed if self.mode != "all_but_specified_domains" else not listed


class SmarterMailConfig(Strict):
    enabled: bool = Field(False, description="The primary is a SmarterMail server reached by its web services.")
    url: str = Field("", description="The primary's webmail URL, e.g. https://mail.example.com.")
    username: str = Field("", description="Login for the web services.")
    password: SecretField | None = Field(None, description="Password for the web services.")
    user_verification: Literal["none", "web_service"] = Field("none", description="How recipients are checked.")
    cache_ttl_s: int = Field(600, ge=1, description="How long user answers and the domain list are cached, per "
                             "process (10 minutes, as documented).")
    timeout_s: float = Field(5, gt=0, description="HTTP timeout for each web-service call.")


class AccessRule(Strict):
    """One allow or block entry of an inbound gateway (PMG's welcome and block lists, Postfix's access maps)."""

    action: Literal["allow", "block"] = Field(description="block: `554 5.7.1` at RCPT; allow: the DNS lists "
                                                          "(ingress.dnsbl) do not refuse it.")
    kind: Literal["client", "sender", "helo"] = Field(
        description="What is matched: client (IP, a.b.c.d-a.b.c.e or CIDR), sender (user@domain; @domain: that "
        "domain; domain: it and its subdomains; any case), helo (the HELO/EHLO name, exactly, any case).")
    value: str = Field(min_length=1, max_length=320, description="The client network, sender or HELO name.")

    @model_validator(mode="after")
    def _value(self) -> "AccessRule":
        if self.kind == "client":
            AddressSet.parse([self.value])
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
    access: list[AccessRule] = Field(
        default_factory=list, description="Allow and block entries for mail to this gateway's domains (clients, "
        "senders, HELO names): a matching block entry wins over allow entries. Live (mail.config): "
        "`mailgate access list|add|remove`.")
    virus: VirusActions = Field(default_factory=VirusActions,
                                description="Virus scanning: the actions for infected and unscannable mail, and "
                                            "scan_at_data (used while antivirus.enabled).")

    @field_validator("primary_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for spec in v:
            parse_address_spec(spec)
        return v

    @model_validator(mode="after")
    def _web_service_domains(self) -> "InboundGateway":
        sm = self.smartermail
        if self.domain_verification.mode == "web_service" and not (sm.enabled and sm.url and sm.password):
            raise ValueError(WEB_SERVICE_NEEDS_SMARTERMAIL)
        return self

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
                                      description="specific_domains: sender domains routed through this gateway "
                                                  "(exact names: example.com does not cover mail.example.com).")

    _sender_domains = field_validator("sender_domains")(domain_names)

    @model_validator(mode="after")
    def _auth_pair(self) -> "OutboundGateway":
        if (self.auth_username is None) != (self.auth_password is None):
            raise ValueError("auth_username and auth_password go together")
        if self.mode == "specific_domains" and not self.sender_domains:
            raise ValueError("specific_domains gateway needs sender_domains")
        return self
