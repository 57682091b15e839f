"""Configuration of the Kafka connection (`kafka`) and of the local development broker (`local_broker`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from mailgate.core.config.base import SecretField, Strict, _in_cache, cache_dir


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
    jit: Literal["quick_start", "full"] = Field(
        "quick_start", description="quick_start: the JVM compiles with C1 only (-XX:TieredStopAtLevel=1), the least "
        "CPU to start (tests, development); full: the JVM's whole tiered JIT, which spends CPU compiling in its first "
        "minute under load and less per record after that (a broker that runs for hours; docs/performance.md).")
    start_timeout_s: float = Field(60, gt=0, description="How long to wait for 'Kafka Server started'.")
    sasl_ssl: LocalBrokerSaslSsl | None = Field(None, description="Serve clients over SASL_SSL instead of "
                                                                  "PLAINTEXT (needs kafka.security SCRAM-SHA-512).")
