"""What every `mailgate` subcommand shares: where its configuration comes from, how it is loaded, and how a
subcommand says that it failed.

Reads: `--config FILE`, else `$MAILGATE_CONFIG`, else `/etc/mailgate/mailgate.yaml` (the README's order), validated
by `mailgate.core.config.load_config`; then, except for `mailgate broker`, the Kafka security settings are checked
against the brokers (a wrong password or CA stops here, in one line). Emits: the `Config`. A subcommand that fails
raises an `exits.OperatorError` (or `UsageError`); `mailgate.ops.cli.main` turns every exception into one line on
stderr and an exit status from `exits`, the one error path of the command.
"""
from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from mailgate.core.config import Config, ConfigError, load_config

DEFAULT_CONFIG = "/etc/mailgate/mailgate.yaml"
CONFIG_ENV = "MAILGATE_CONFIG"
NO_SECURITY_CHECK = {"broker", "scan"}
"""Commands that load the configuration without asking Kafka first (the local broker may not be running yet;
`scan` needs only clamd)."""


def config_path(given: str | None) -> str:
    """--config, else $MAILGATE_CONFIG, else /etc/mailgate/mailgate.yaml; made absolute for child processes."""
    path = given or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return str(Path(path).expanduser().absolute())


def with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a subcommand the `--config` option every command takes."""
    parser.add_argument("--config", "-c", default=None,
                        help=f"YAML configuration file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")
    return parser


def load(args: argparse.Namespace) -> Config:
    """The command's configuration, validated, and (except for `broker`) Kafka's security settings checked.
    Remembered on `args.loaded`, so the error path can name the file and the brokers."""
    path = config_path(getattr(args, "config", None))
    try:
        cfg = load_config(path)
    except ConfigError as err:
        if not Path(path).exists():
            raise ConfigError(f"{err} (give --config FILE or set {CONFIG_ENV})") from None
        raise
    args.loaded = cfg
    if getattr(args, "command", None) not in NO_SECURITY_CHECK:
        from mailgate.core.kafka import check_security
        asyncio.run(check_security(cfg))
    return cfg
