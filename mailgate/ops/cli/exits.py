"""Exit statuses of every `mailgate` command, and the one-line message an operator sees for each failure.

Reads: an exception that ended a command. Emits: (exit status, one line for stderr). The statuses follow the
spirit of sysexits(3) and are documented in docs/operations.md; a traceback is shown only with `--debug`.
"""
from __future__ import annotations

OK = 0
"""The command did what was asked."""
FAILURE = 1
"""It could not (a message not in quarantine, a port in use, a replay refused, the broker not running...)."""
USAGE = 2
"""Bad command line: unknown command or option, a bad value (argparse's own status)."""
CONFIG = 3
"""The configuration file is missing, unreadable or invalid (the message names the file and each bad key)."""
UNAVAILABLE = 4
"""Kafka could not be reached at `kafka.bootstrap_servers`."""
NOT_ALL_APPLIED = 5
"""A queue or destination command was written to the log, but not every egress replica acknowledged it within
`--timeout` (the ones named apply it when they read it)."""
INTERRUPTED = 130
"""Stopped by Ctrl-C."""


class OperatorError(Exception):
    """A failure the operator can act on; `exit_status` says which kind."""

    exit_status = FAILURE


class UsageError(OperatorError):
    """An argument names something that is not there (a gateway, a message) or is malformed."""

    exit_status = USAGE


class KafkaUnreachable(OperatorError):
    exit_status = UNAVAILABLE


def one_line(text: str) -> str:
    """Several lines (a config error lists each key) joined into one: `a: b; c: d`."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    return "; ".join(parts) if parts else "(no detail)"


def classify(err: BaseException, config_path: str | None, servers: list[str] | None) -> tuple[int, str]:
    """(exit status, message without the `mailgate:` prefix) for an exception that ended a command."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable

    from mailgate.core.config import ConfigError
    if isinstance(err, ConfigError):
        text = one_line(str(err)).replace("invalid configuration;", "invalid configuration:")
        return CONFIG, text if not config_path or text.startswith(config_path) else f"{config_path}: {text}"
    if isinstance(err, (KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable, KafkaUnreachable)):
        where = ", ".join(servers or []) or "the configured brokers"
        src = f" (kafka.bootstrap_servers in {config_path})" if config_path else ""
        detail = one_line(str(err))
        detail = "no broker answered" if "Unable to bootstrap" in detail else detail
        return UNAVAILABLE, f"cannot reach Kafka at {where}{src}: {detail}"
    if isinstance(err, OperatorError):
        return err.exit_status, one_line(str(err))
    from mailgate.ops.kafka.local_broker import BrokerError
    from mailgate.ops.audit.timespec import TimeSpecError
    from mailgate.ops.audit.replay import ReplayError
    from mailgate.core.kafka import KafkaSecurityError
    if isinstance(err, TimeSpecError):
        return USAGE, one_line(str(err))
    if isinstance(err, (BrokerError, ReplayError, KafkaSecurityError)):
        return FAILURE, one_line(str(err))
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return FAILURE, f"{where}{err.strerror}"
    return FAILURE, f"{one_line(str(err)) or type(err).__name__} (run with --debug for details)"
