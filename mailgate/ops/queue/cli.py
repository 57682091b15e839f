"""`mailgate queue hold|release|delete|bounce|flush` and `mailgate destination suspend|resume|flush|list`.

Reads: the command line; message ids, or a filter (--destination, --domain, --tier) over the messages waiting now,
whose count is shown and which acts only with --yes. Emits: the commands through `mailgate.ops.queue.commands`, and a
line saying what was done: how many messages or destinations, and which egress replicas applied it (exit status
`exits.NOT_ALL_APPLIED` when a member of the egress group did not acknowledge within --timeout).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime, timezone

from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail.queue_commands import DESTINATION_KINDS, MESSAGE_COMMANDS
from mailgate.ops.queue import commands as qc
from mailgate.ops.audit.timespec import parse_until
from mailgate.ops.cli import command, exits


def add_queue_arguments(q: argparse.ArgumentParser) -> None:
    """The queue control arguments of `mailgate queue` (without an action it shows the queue, as before)."""
    q.add_argument("action", nargs="?", choices=[*MESSAGE_COMMANDS, "list"],
                   help="list: each waiting message (like postqueue -p); else a command on queued messages")
    q.add_argument("message_ids", nargs="*", help="the messages (or use a filter)")
    q.add_argument("--destination", help="filter: messages routed to this gateway")
    q.add_argument("--domain", help="filter: messages with a recipient in this domain")
    q.add_argument("--tier", help="filter: messages in this tier as `mailgate queue` shows it (active, retry.60s)")
    q.add_argument("--reason", help="why (required; recorded in the audit log, and in the DSN of a bounce)")
    q.add_argument("--operator", help="who, for the audit log (default: the OS user)")
    q.add_argument("--yes", action="store_true", help="act on the messages a filter selected")
    q.add_argument("--timeout", type=float, default=60, help="seconds to wait for every egress replica")


def register(sub, with_config) -> None:
    d = with_config(sub.add_parser("destination", help="suspend, resume, flush or list delivery destinations"))
    d.add_argument("action", choices=["suspend", "resume", "flush", "list"])
    d.add_argument("kind", nargs="?", choices=DESTINATION_KINDS,
                   help="inbound (a primary server), outbound (a gateway) or domain (a recipient domain)")
    d.add_argument("name", nargs="?", help="the gateway's name or the domain")
    d.add_argument("--until", help="suspend until this time (ISO 8601) or for this long (30m, 2h)")
    d.add_argument("--reason", help="why (required except for list)")
    d.add_argument("--operator", help="who, for the audit log (default: the OS user)")
    d.add_argument("--timeout", type=float, default=60, help="seconds to wait for every egress replica")
    d.add_argument("--json", action="store_true", help="JSON output")
    d.set_defaults(func=cmd_destination)


def _report(what: str, applied: qc.Applied) -> int:
    who = f"applied by {len(applied.replicas)} egress replica(s) in {applied.seconds:.1f}s"
    print(f"{what} [command {applied.command_id}]; {who}")
    if applied.missing:
        print(f"NOT acknowledged by: {', '.join(sorted(applied.missing))} (they apply it when they read it)")
        return exits.NOT_ALL_APPLIED
    if not applied.replicas:
        print("no egress replica is running: each applies it when it starts")
    return 0


async def run_queue(cfg: Config, args: argparse.Namespace) -> int:
    ids = list(args.message_ids)
    filtered = args.destination or args.domain or args.tier
    if filtered:
        if ids:
            raise exits.UsageError("give message ids or a filter, not both")
        ids = await qc.select(cfg, args.destination, args.domain, args.tier)
        print(f"{len(ids)} waiting message(s) match")
        if not args.yes:
            print(f"nothing done: add --yes to {args.action} them")
            return 0 if not ids else 1
    if not ids:
        raise exits.UsageError(f"queue {args.action} needs message ids or a filter")
    applied = await qc.message_command(cfg, args.action, ids, args.reason or "", args.operator, args.timeout)
    return _report(f"{args.action}: {applied.count} message(s)", applied)


def cmd_queue_action(cfg: Config, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_queue(cfg, args))
    except qc.QueueCommandError as err:
        raise exits.UsageError(str(err)) from None


def cmd_destination(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    if args.action == "list":
        return asyncio.run(show_destinations(cfg, args.json))
    if not args.kind or not args.name:
        raise exits.UsageError(f"destination {args.action} needs a kind ({', '.join(DESTINATION_KINDS)}) and a name")
    until = parse_until(args.until) if args.until else None
    try:
        applied = asyncio.run(qc.destination_command(cfg, args.action, args.kind, args.name, args.reason or "",
                                                     args.operator, until, args.timeout))
    except qc.QueueCommandError as err:
        raise exits.UsageError(str(err)) from None
    return _report(f"{args.action}: {args.kind} {args.name}", applied)


async def show_destinations(cfg: Config, as_json: bool = False) -> int:
    state = await qc.control_state(cfg)
    now = now_ms()
    rows = [{"kind": s.kind, "name": s.name, "until": s.until, "operator": s.operator, "reason": s.reason,
             "since": s.occurred_at} for s in state.suspensions.values() if s.until is None or s.until > now]
    if as_json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        until = _when(r["until"]) if r["until"] else "resumed by hand"
        print(f"{r['kind']:9} {r['name']:28} suspended since {_when(r['since'])} until {until} "
              f"by {r['operator']}: {r['reason']}")
    print(f"{len(rows)} suspended destination(s)")
    return 0


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
