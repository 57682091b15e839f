"""Configuration of the operator tools (`admin`, `metrics`, `tracking`)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from mailgate.core.config.base import SecretField, Strict, _in_cache, cache_dir


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
    on_log_mismatch: Literal["refuse", "rebuild"] = Field(
        "refuse", description="When the store was built from another log (another Kafka cluster id or mail.events "
                              "topic id, or a stored position beyond a partition's end): refuse: the tracker does "
                              "not serve and says to run `mailgate tracker --rebuild`; rebuild: it empties the store "
                              "and projects the log again by itself.")
