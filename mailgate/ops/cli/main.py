"""The `mailgate` command: one entry point for every stage and operator tool.

`mailgate ingress|processor|egress --config FILE` runs one stage (any number of replicas);
`mailgate up --config FILE` runs the local broker, all three stages and the tracker; `mailgate broker
start|stop|status`;
`mailgate topics [--fix]`; `mailgate status`; `mailgate trace <message-id>`; `mailgate tracker`, `mailgate search`
(message tracking); `mailgate cache purge [address|domain]`;
`mailgate sink --listen HOST:PORT`. The configuration file is `--config`, else $MAILGATE_CONFIG, else
/etc/mailgate/mailgate.yaml, and is validated before anything starts. Every failure is one line on stderr and an
exit status from mailgate.ops.cli.exits (a traceback only with `--debug`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from mailgate.core.logs import setup_logging
from mailgate.core.topology import STAGES
from mailgate.ops.cli import command, exits

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LONG_RUNNING = {"ingress", "processor", "egress", "up", "admin", "sink"}
"""Commands whose own logs are the product; the others quiet the Kafka client's connection chatter."""


def cmd_stage(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    if args.command == "ingress":
        from ingress.runner import run
    elif args.command == "processor":
        from processors.runner import run
    else:
        from egress.runner import run
    run(cfg)
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from mailgate.ops.kafka import local_broker as broker
    from mailgate.core import kafka
    cfg = command.load(args)
    if args.action == "start":
        st = broker.start(cfg)
        created = asyncio.run(kafka.ensure_topics(cfg))
        print(f"broker running, pid {st.pid}, 127.0.0.1:{st.port}; topics created: {len(created)}")
    elif args.action == "stop":
        print("broker stopped" if broker.stop(cfg) else "broker was not running")
    else:
        st = broker.status(cfg)
        if args.json:
            print(json.dumps({"running": st.running, "pid": st.pid, "port": st.port,
                              "home": str(cfg.local_broker.home)}))
        else:
            print(f"running, pid {st.pid}, 127.0.0.1:{st.port}" if st.running else "not running")
        return exits.OK if st.running else exits.FAILURE
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from mailgate.ops.local.supervisor import up
    return up(command.load(args), command.config_path(args.config), local_broker=not args.no_broker)


def cmd_trace(args: argparse.Namespace) -> int:
    from mailgate.ops.tracking.cli import trace
    return trace(command.load(args), args.message_id, as_json=args.json, from_log=args.from_log)


def cmd_cache(args: argparse.Namespace) -> int:
    from mailgate.mail.directory.purge import request_purge
    record = asyncio.run(request_purge(command.load(args), args.target))
    print(f"cache purge {record.request_id} requested for {record.target or 'every address'}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from mailgate.ops.audit.events_cli import EventFilter, show_events
    from mailgate.ops.audit.timespec import parse_time
    since = parse_time(args.since) if args.since else None
    flt = EventFilter(types=set(args.type or []), domain=args.domain, message_id=args.message_id)
    try:
        asyncio.run(show_events(command.load(args), flt, since, follow=args.follow, as_json=args.json))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from mailgate.ops.audit.timespec import parse_time
    from mailgate.ops.audit.replay import ReplayRequest, replay
    req = ReplayRequest(topic=args.topic, reason=args.reason, from_offset=args.from_offset,
                        since_ms=parse_time(args.since) if args.since else None,
                        until_ms=parse_time(args.until) if args.until else None, message_id=args.message_id,
                        force_redeliver=args.force_redeliver, dry_run=args.dry_run, as_json=args.json)
    asyncio.run(replay(command.load(args), req))
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from mailgate.ops.queue.cli import MESSAGE_COMMANDS, cmd_queue_action
    if args.action in MESSAGE_COMMANDS:  # hold, release, delete, bounce, flush
        return cmd_queue_action(command.load(args), args)
    from mailgate.ops.tracking.cli import queue
    return queue(command.load(args), args.action, as_json=args.json, from_log=args.from_log)


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
    rp.add_argument("--json", action="store_true", help="--dry-run: one JSON object per selected record")
    q = with_config(sub.add_parser("queue", help="what is waiting, per destination and retry tier"))
    q.add_argument("--json", action="store_true", help="rows as JSON")
    from mailgate.ops.queue.cli import add_queue_arguments, register as register_destination
    add_queue_arguments(q)
    q.add_argument("--from-log", action="store_true", help="scan mail.events instead of the tracking store")
    q.set_defaults(func=cmd_queue)
    register_destination(sub, with_config)


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
    run(command.load(args), host, port)
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from mailgate.ops.local.sink import parse_listen, run
    try:
        parse_listen(args.listen)
    except ValueError as err:
        print(f"mailgate sink: error: {err}", file=sys.stderr)
        return exits.USAGE
    run(args.listen)
    return exits.OK


def cmd_quarantine(args: argparse.Namespace) -> int:
    from mailgate.ops.quarantine import run
    return asyncio.run(run(command.load(args), args.action, args.message_id, args.operator, as_json=args.json,
                           from_log=args.from_log, confirm_malware=args.confirm_malware))


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit status 2 (no usage block)."""

    def error(self, message: str):
        self.exit(exits.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"invalid log level {value!r}: choose from {', '.join(LOG_LEVELS)}")
    return value.upper()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"mailgate {version('mailgate')}"
    except PackageNotFoundError:
        return "mailgate (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="mailgate", description="SMTP mail gateway on Apache Kafka",
               epilog="Exit status: 0 ok, 1 failure, 2 usage, 3 configuration, 4 Kafka unreachable, 130 Ctrl-C.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    p.add_argument("--log-level", type=_log_level, default="INFO", help=", ".join(LOG_LEVELS))
    p.add_argument("--debug", action="store_true", help="show a traceback when a command fails")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    with_config = command.with_config

    for stage in STAGES:
        with_config(sub.add_parser(stage, help=f"run the {stage} stage")).set_defaults(func=cmd_stage)
    b = with_config(sub.add_parser("broker", help="manage the local Kafka broker"))
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--json", action="store_true", help="status: one JSON object")
    b.set_defaults(func=cmd_broker)
    from mailgate.ops.kafka import status_cli, topics_cli
    topics_cli.register(sub, with_config)
    status_cli.register(sub, with_config)
    s = sub.add_parser("sink", help="a stand-in SMTP server that accepts every message and prints a line for each")
    s.add_argument("--listen", default="127.0.0.1:2526", help="HOST:PORT to bind (default 127.0.0.1:2526)")
    s.set_defaults(func=cmd_sink)
    u = with_config(sub.add_parser("up", help="run the local broker and all stages until Ctrl-C"))
    u.add_argument("--no-broker", action="store_true", help="use the configured Kafka; do not start one")
    u.set_defaults(func=cmd_up)
    t = with_config(sub.add_parser("trace", help="the timeline of one message from mail.events"))
    t.add_argument("message_id")
    t.add_argument("--json", action="store_true", help="one JSON object per event")
    t.add_argument("--from-log", action="store_true", help="scan mail.events instead of the tracking store")
    t.set_defaults(func=cmd_trace)
    q = with_config(sub.add_parser("quarantine", help="list, show, release or delete quarantined mail"))
    q.add_argument("action", choices=["list", "show", "release", "delete"])
    q.add_argument("message_id", nargs="?", help="the message (show, release, delete)")
    q.add_argument("--operator", help="who releases it, for the audit log (default: the OS user)")
    q.add_argument("--json", action="store_true", help="list, show: JSON instead of text")
    q.add_argument("--from-log", action="store_true", help="scan the topics, not the tracking store")
    q.add_argument("--confirm-malware", action="store_true",
                   help="release: needed for mail the virus scan held (levels virus, unscannable); audited")
    q.set_defaults(func=cmd_quarantine)
    _operator_commands(sub, with_config)
    a = with_config(sub.add_parser("admin", help="the administration web page and HTTP API"))
    a.add_argument("--listen", help="HOST:PORT to bind (default: admin.listen_host/listen_port)")
    a.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt or stdin) and print its hash for admin.password_hash")
    a.set_defaults(func=cmd_admin)
    from mailgate.ops.settings.config_cli import register as register_config_commands
    register_config_commands(sub, with_config)
    from mailgate.ops.settings.access_cli import register as register_access_commands
    register_access_commands(sub, with_config)
    from mailgate.ops.settings.auth_cli import register as register_auth_commands
    register_auth_commands(sub, with_config)
    from mailgate.ops.settings.dkim_cli import register as register_dkim_commands
    register_dkim_commands(sub, with_config)
    from mailgate.ops.tracking.cli import register as register_tracking_commands
    register_tracking_commands(sub, with_config)
    from mailgate.ops.scan_cli import register as register_scan_command
    register_scan_command(sub, with_config)
    c = with_config(sub.add_parser("cache", help="user-verification caches of every ingress and processor"))
    c.add_argument("action", choices=["purge"])
    c.add_argument("target", nargs="?", help="an address, a domain, or nothing for every cached answer")
    c.set_defaults(func=cmd_cache)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format, "DEBUG" if args.debug and args.log_level == "INFO" else args.log_level)
    if args.command not in LONG_RUNNING and not args.debug:
        for chatty in ("aiokafka", "asyncio"):  # connection retries, "Unclosed AIOKafkaConsumer" after a failure
            logging.getLogger(chatty).setLevel(logging.CRITICAL + 1)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except Exception as err:  # one clear line for the operator; the traceback only with --debug
        if args.debug:
            logging.getLogger("mailgate").exception("failed")
        cfg = getattr(args, "loaded", None)
        status, message = exits.classify(err, command.config_path(getattr(args, "config", None)) if cfg else None,
                                         cfg.kafka.bootstrap_servers if cfg else None)
        print(f"mailgate {args.command}: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
