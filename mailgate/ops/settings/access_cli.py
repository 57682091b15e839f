"""`mailgate access list|add|remove`: the allow and block entries of the inbound gateways, as live settings.

Reads: the configuration in effect (the file's gateways, or `mail.config`'s once it holds any). Emits: for add and
remove, the changed gateway as a GatewayConfigured in `mail.config` naming its operator (`--operator`, default the
OS user) — the audit record of the change, shown by `mailgate config history` — which every running ingress
applies without a restart; for list, the entries (`--json`: an array). A gateway or entry that is not there, or a
value that is not valid, is one line on stderr (the CLI's one error path) and exit status 2.
"""
from __future__ import annotations

from mailgate.ops.cli import command

import argparse
import asyncio
import json

from pydantic import ValidationError

from mailgate.core.config import AccessRule, Config
from mailgate.core.config_events import effective_config, read_state
from mailgate.ops.cli.exits import UsageError
from mailgate.ops.settings.config_writer import append, diff


def _rule(args: argparse.Namespace) -> AccessRule:
    try:
        return AccessRule(action=args.action_kind or "block", kind=args.kind, value=args.value)
    except ValidationError as err:
        first = err.errors()[0]
        raise UsageError(f"{args.kind} {args.value!r}: {first['msg']}") from None


async def _list(cfg: Config, gateway: str | None, as_json: bool) -> int:
    live = effective_config(cfg, (await read_state(cfg))[0])
    if gateway is not None and not any(g.name == gateway for g in live.inbound_gateways):
        raise UsageError(f"no inbound gateway named {gateway!r}")
    rows = [{"gateway": g.name, **r.model_dump()} for g in live.inbound_gateways if gateway in (None, g.name)
            for r in g.access]
    if as_json:
        print(json.dumps(rows))
    for r in [] if as_json else rows:
        print(f"{r['gateway']:16} {r['action']:6} {r['kind']:7} {r['value']}")
    return 0


async def _change(cfg: Config, args: argparse.Namespace) -> int:
    rule = _rule(args)
    state, _ = await read_state(cfg)
    live = effective_config(cfg, state)
    gw = next((g for g in live.inbound_gateways if g.name == args.gateway), None)
    if gw is None:
        raise UsageError(f"no inbound gateway named {args.gateway!r}")
    same = [r for r in gw.access if (r.kind, r.value.lower()) == (rule.kind, rule.value.lower())
            and (args.action_kind is None or r.action == rule.action)]
    if args.action == "remove":
        if not same:
            raise UsageError(f"{args.gateway}: no {args.action_kind or ''} entry {rule.kind} {rule.value}".replace(
                "  ", " "))
        entries = [r for r in gw.access if r not in same]
    else:
        entries = [r for r in gw.access if (r.kind, r.value.lower()) != (rule.kind, rule.value.lower())] + [rule]
    changed = [g.model_copy(update={"access": entries}) if g.name == gw.name else g for g in live.inbound_gateways]
    await append(cfg, diff(state, live.model_copy(update={"inbound_gateways": changed}), args.operator,
                           running=live))
    verb = "removed" if args.action == "remove" else f"added {rule.action}"
    print(f"inbound/{gw.name}: {verb} {rule.kind} {rule.value} (written to mail.config)")
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    if args.action == "list":
        return asyncio.run(_list(cfg, args.gateway, args.json))
    if not args.gateway or not args.kind or not args.value:
        raise UsageError(f"{args.action}: give GATEWAY client|sender|helo VALUE")
    if args.action == "add" and args.action_kind is None:
        raise UsageError("add: give --allow or --block")
    return asyncio.run(_change(cfg, args))


def register(sub: argparse._SubParsersAction, with_config=lambda p: p) -> None:
    a = with_config(sub.add_parser("access", help="allow and block entries of the inbound gateways (live)"))
    a.add_argument("action", choices=["list", "add", "remove"])
    a.add_argument("gateway", nargs="?", help="the inbound gateway (list: all when not given)")
    a.add_argument("kind", nargs="?", choices=["client", "sender", "helo"], help="what the entry matches")
    a.add_argument("value", nargs="?", help="client: IP, range or CIDR; sender: user@domain, @domain or domain; "
                                            "helo: the name")
    mode = a.add_mutually_exclusive_group()
    mode.add_argument("--allow", dest="action_kind", action="store_const", const="allow",
                      help="add: not refused by the DNS lists")
    mode.add_argument("--block", dest="action_kind", action="store_const", const="block",
                      help="add: 554 5.7.1 at RCPT")
    a.add_argument("--operator", help="who makes the change, for the audit record (default: the OS user)")
    a.add_argument("--json", action="store_true", help="list: a JSON array")
    a.set_defaults(func=cmd_access, action_kind=None)
