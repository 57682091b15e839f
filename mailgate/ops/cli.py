"""The `mailgate` command: one entry point for every stage and operator tool.

`mailgate ingress|processor|egress --config FILE` runs one stage (any number of replicas);
`mailgate up --config FILE` runs the local broker and all three stages; `mailgate broker start|stop|status`;
`mailgate topics create`; `mailgate trace <message-id>`; `mailgate tracker`, `mailgate search` (message tracking); `mailgate cache purge [address|domain]`.
Configuration is validated before anything starts.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mailgate.core.config import Config, ConfigError, load_config
from mailgate.core.logs import setup_logging

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
    from mailgate.ops import broker
    from mailgate.core import kafka
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
    from mailgate.core import kafka
    created = asyncio.run(kafka.ensure_topics(_config(args)))
    print("created: " + (", ".join(created) if created else "none (all exist)"))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from mailgate.ops.supervisor import up
    return up(_config(args), args.config, local_broker=not args.no_broker)


def cmd_trace(args: argparse.Namespace) -> int:
    from mailgate.ops.tracking.cli import trace
    return trace(_config(args), args.message_id, as_json=args.json, from_log=args.from_log)


def cmd_cache(args: argparse.Namespace) -> int:
    from mailgate.mail.directory.purge import request_purge
    record = asyncio.run(request_purge(_config(args), args.target))
    print(f"cache purge {record.request_id} requested for {record.target or 'every address'}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from mailgate.ops.events_view import EventFilter, parse_time, show_events
    since = parse_time(args.since) if args.since else None
    flt = EventFilter(types=set(args.type or []), domain=args.domain, message_id=args.message_id)
    try:
        asyncio.run(show_events(_config(args), flt, since, follow=args.follow, as_json=args.json))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from mailgate.ops.events_view import parse_time
    from mailgate.ops.replay import ReplayRequest, replay
    req = ReplayRequest(topic=args.topic, reason=args.reason, from_offset=args.from_offset,
                        since_ms=parse_time(args.since) if args.since else None,
                        until_ms=parse_time(args.until) if args.until else None, message_id=args.message_id,
                        force_redeliver=args.force_redeliver, dry_run=args.dry_run)
    asyncio.run(replay(_config(args), req))
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from mailgate.ops.tracking.cli import queue
    return queue(_config(args), args.action, as_json=args.json, from_log=args.from_log)


def _operator_commands(sub, with_config) -> None:
    ev = with_config(sub.add_parser("events", help="a filtered view of the audit log (mail.events)"))
    ev.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    ev.add_argument("--since", help="ISO 8601 time (naive = UTC) or an age like 10m, 2h, 1d")
    ev.add_argument("--type", action="append", help="only this event type (repeatable)")
    ev.add_argument("--domain", help="only messages to or from this domain")
    ev.add_argument("--message-id", help="only this message")
    ev.add_argument("--json", action="store_true", help="one JSON object per event")
    ev.set_defaults(func=cmd_events)
    rp = with_config(sub.add_parser("replay", help="re-inject a range of a mail topic into the pipeline"))
    rp.add_argument("--topic", required=True, help="mail.received, mail.outbound or mail.retry.<delay>s")
    start = rp.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=int, help="start at this offset of every partition")
    start.add_argument("--since", help="start at this time (ISO 8601 or an age like 10m)")
    rp.add_argument("--until", help="stop at this time (ISO 8601 or an age)")
    rp.add_argument("--message-id", help="only this message")
    rp.add_argument("--dry-run", action="store_true", help="list what would be replayed; write nothing")
    rp.add_argument("--force-redeliver", action="store_true",
                    help="deliver even to recipients already delivered (outbound/retry only)")
    rp.add_argument("--reason", required=True, help="why (recorded in the ReplayRequested event)")
    rp.set_defaults(func=cmd_replay)
    q = with_config(sub.add_parser("queue", help="what is waiting, per destination and retry tier"))
    q.add_argument("--json", action="store_true", help="rows as JSON")
    q.add_argument("action", nargs="?", choices=["list"], help="list: each waiting message (like postqueue -p)")
    q.add_argument("--from-log", action="store_true", help="scan mail.events instead of the tracking store")
    q.set_defaults(func=cmd_queue)


def cmd_admin(args: argparse.Namespace) -> int:
    if args.hash_password:
        import getpass
        from mailgate.ops.admin.auth import hash_password
        print(hash_password(getpass.getpass("admin password: ") if sys.stdin.isatty() else sys.stdin.readline()
                            .rstrip("\n")))
        return 0
    from mailgate.ops.admin.server import run
    host, port = None, None
    if args.listen:
        host, _, p = args.listen.rpartition(":")
        host, port = host or None, int(p)
    run(_config(args), host, port)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from mailgate.ops.quarantine import run
    if args.action in ("list", "show"):
        from mailgate.ops.tracking.cli import quarantine
        status = quarantine(_config(args), args.action, args.message_id, from_log=args.from_log)
        if status is not None:
            return status
    return asyncio.run(run(_config(args), args.action, args.message_id, args.operator))


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
    t.add_argument("--from-log", action="store_true", help="scan mail.events instead of the tracking store")
    t.set_defaults(func=cmd_trace)
    q = with_config(sub.add_parser("quarantine", help="list, show, release or delete quarantined spam"))
    q.add_argument("action", choices=["list", "show", "release", "delete"])
    q.add_argument("message_id", nargs="?", help="the message (show, release, delete)")
    q.add_argument("--operator", help="who releases it, for the audit log (default: the OS user)")
    q.add_argument("--from-log", action="store_true", help="list/show: scan the topics, not the tracking store")
    q.set_defaults(func=cmd_quarantine)
    _operator_commands(sub, with_config)
    a = with_config(sub.add_parser("admin", help="the administration web page and HTTP API"))
    a.add_argument("--listen", help="HOST:PORT to bind (default: admin.listen_host/listen_port)")
    a.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt or stdin) and print its hash for admin.password_hash")
    a.set_defaults(func=cmd_admin)
    from mailgate.ops.config_cli import register as register_config_commands
    register_config_commands(sub, with_config)
    from mailgate.ops.tracking.cli import register as register_tracking_commands
    register_tracking_commands(sub, with_config)
    c = with_config(sub.add_parser("cache", help="user-verification caches of every ingress and processor"))
    c.add_argument("action", choices=["purge"])
    c.add_argument("target", nargs="?", help="an address, a domain, or nothing for every cached answer")
    c.set_defaults(func=cmd_cache)
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
        from mailgate.ops.broker import BrokerError
        from mailgate.ops.events_view import TimeSpecError
        from mailgate.ops.replay import ReplayError
        from mailgate.ops.tracking.store import StoreUnavailable
        if isinstance(err, (BrokerError, ReplayError, TimeSpecError, StoreUnavailable)):
            print(f"mailgate: {err}", file=sys.stderr)
            return 1
        logging.getLogger("mailgate").exception("failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
