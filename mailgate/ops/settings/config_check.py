"""`mailgate config check [FILE]`: is this configuration file one every command would start with? (`postfix check`)

Reads: the YAML file (FILE, else --config / $MAILGATE_CONFIG / /etc/mailgate/mailgate.yaml). Emits: `FILE: ok`, or
one line per problem — invalid keys with their paths, then files the configuration names that cannot be read
(TLS certificate and key, CA bundles, secret files) and secret environment variables that are not set.
Exit status 0 when the file is usable, 3 (configuration) when not.
"""
from __future__ import annotations

from mailgate.ops.cli import command

import json
import os
from pathlib import Path

from mailgate.core.config import Config, ConfigError, Secret, load_config
from mailgate.ops.cli import exits


def _secrets(cfg: Config) -> list[tuple[str, Secret]]:
    found = [("kafka.security.sasl_password", cfg.kafka.security.sasl_password)]
    found += [(f"outbound_gateways.{g.name}.auth_password", g.auth_password) for g in cfg.outbound_gateways]
    found += [(f"inbound_gateways.{g.name}.smartermail.password", g.smartermail.password)
              for g in cfg.inbound_gateways]
    return [(k, s) for k, s in found if s is not None]


def _files(cfg: Config) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path | None]] = [("kafka.security.ca_file", cfg.kafka.security.ca_file)]
    if cfg.ingress.tls is not None:
        tls = cfg.ingress.tls
        found += [("ingress.tls.cert_file", tls.cert_file), ("ingress.tls.key_file", tls.key_file)]
    found += [(f"outbound_gateways.{g.name}.ca_file", g.ca_file) for g in cfg.outbound_gateways]
    found += [(f"{k}.file", s.file) for k, s in _secrets(cfg)]
    return [(k, p) for k, p in found if p is not None]


def problems(cfg: Config) -> list[str]:
    """What would stop a command later, although every key is valid."""
    out = [f"{key}: cannot read {path}" for key, path in _files(cfg) if not os.access(path, os.R_OK)]
    out += [f"{key}: environment variable {s.env} is not set" for key, s in _secrets(cfg)
            if s.env is not None and s.env not in os.environ]
    ports = {"ingress.listen_port": cfg.ingress.listen_port, "admin.listen_port": cfg.admin.listen_port}
    if cfg.metrics.enabled:
        ports.update({f"metrics.{s}_port": cfg.metrics.port(s) for s in ("ingress", "processor", "egress")})
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port and port in seen:
            out.append(f"{key}: port {port} is also {seen[port]}")
        seen.setdefault(port, key)
    return out


def check(file: str | None, as_json: bool = False) -> int:
    path = command.config_path(file)
    try:
        found = problems(load_config(path))
    except ConfigError as err:
        lines = str(err).splitlines()
        found = [line.strip() for line in lines[1:]] or [lines[0].removeprefix(f"{path}: ")]
    if as_json:
        print(json.dumps({"file": path, "ok": not found, "problems": found}))
    elif found:
        print("\n".join(f"{path}: {p}" for p in found))
    else:
        print(f"{path}: ok")
    return exits.OK if not found else exits.CONFIG
