"""The `mailgate` command: one entry point for every stage and operator tool.

`mailgate ingress|processor|egress --config FILE` runs one stage (any number of replicas);
`mailgate up --config FILE` runs the local broker and all three stages; `mailgate broker start|stop|status`;
`mailgate topics create`; `mailgate trace <message-id>`. Configuration is validated before anything starts.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mailgate.config import Config, ConfigError, load_config
from mailgate.logs import setup_logging

DEFAULT_CONFIG = "examples/mailgate.yaml"


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_stage(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.command == "ingress":
        from ingress.server import run
    elif args.command == "processor":
        from processors.runner import run
    else:
        from egress.runner import run
    run(cfg)
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from mailgate import broker, kafka
    cfg = _config(args)
    if args.action == "start":
        st = broker.start(cfg)
        created = asyncio.run(kafka.ensure_topics(cfg))
        print(f"broker running, pid {st.pid}, 127.0.0.1:{st.port}; topics created: {len(created)}")
    elif args.action == "stop":
        print("broker stopped" if broker.stop(cfg) else "broker was not running")
    else:
        st = broker.status(cfg)
        print(f"running, pid {st.pid}, 127.0.0.1:{st.port}" if st.running else "not running")
        return 0 if st.running else 3
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from mailgate import kafka
    created = asyncio.run(kafka.ensure_topics(_config(args)))
    print("created: " + (", ".join(created) if created else "none (all exist)"))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from mailgate.supervisor import up
    return up(_config(args), args.config, local_broker=not args.no_broker)


def cmd_trace(args: argparse.Namespace) -> int:
    from mailgate.audit import print_trace
    return asyncio.run(print_trace(_config(args), args.message_id, as_json=args.json))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailgate", description="SMTP mail gateway on Apache Kafka")
    p.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="YAML configuration file")
        return sp

    for stage in ("ingress", "processor", "egress"):
        with_config(sub.add_parser(stage, help=f"run the {stage} stage")).set_defaults(func=cmd_stage)
    b = with_config(sub.add_parser("broker", help="manage the local Kafka broker"))
    b.add_argument("action", choices=["start", "stop", "status"])
    b.set_defaults(func=cmd_broker)
    with_config(sub.add_parser("topics", help="create the declared topics")).set_defaults(func=cmd_topics)
    u = with_config(sub.add_parser("up", help="run the local broker and all stages until Ctrl-C"))
    u.add_argument("--no-broker", action="store_true", help="use the configured Kafka; do not start one")
    u.set_defaults(func=cmd_up)
    t = with_config(sub.add_parser("trace", help="the timeline of one message from mail.events"))
    t.add_argument("message_id")
    t.add_argument("--json", action="store_true", help="one JSON object per event")
    t.set_defaults(func=cmd_trace)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format, args.log_level)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"mailgate: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a clear line, not a traceback, for operator errors
        from mailgate.broker import BrokerError
        if isinstance(err, BrokerError):
            print(f"mailgate: {err}", file=sys.stderr)
            return 1
        logging.getLogger("mailgate").exception("failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
