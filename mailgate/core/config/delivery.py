"""Configuration of egress (`spool`, `delivery`, `dkim_signing`): timeouts, retry tiers, concurrency, the
bounds of what is in flight, and the DKIM keys outbound mail is signed with."""
from __future__ import annotations

import socket

from pydantic import Field, field_validator

from mailgate.core.config.base import SecretField, Strict
from mailgate.core.config.direct import DirectDeliveryConfig


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
    direct: DirectDeliveryConfig = Field(default_factory=DirectDeliveryConfig,
                                         description="Direct delivery of outbound mail to its recipients' MX hosts.")

    @field_validator("retry_schedule_s")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s <= 0 for s in v):
            raise ValueError("every retry delay must be positive")
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
