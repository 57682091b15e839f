"""Configuration of the processor's checks (`spam`, `sender_auth`): scanners, thresholds, the actions per
spam level, and SPF, DKIM and DMARC with their resolver."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mailgate.core.config.base import Strict
from mailgate.core.netaddr import AddressSet, parse_address_spec


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
    dnsbl_weight: float = Field(
        1.0, ge=0, description="Spam score per point of the client's DNS-list score (ingress.dnsbl; recorded in "
        "MessageReceived.dnsbl_score), added to the total as the scorer `dnsbl`.")
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
