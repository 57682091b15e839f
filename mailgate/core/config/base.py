"""What every part of the configuration is built from: the strict model, secrets given by reference, the error
naming every bad key, and the per-user cache directory relative paths are resolved against."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator


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
