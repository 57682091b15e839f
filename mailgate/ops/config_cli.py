"""`mailgate config apply|history|keygen` and `mailgate gateway list|add|disable|enable|verify`.

Reads: the YAML file and `mail.config`. Emits: GatewayConfigured / GatewayRemoved events to `mail.config` (running
stages follow it), printed diffs and history. Every change names its operator (`--operator`, default the OS user).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime, timezone

from mailgate.core.config import Config, ConfigError, load_config
from mailgate.core.config_events import KINDS, append, diff, effective_config, read_state, stored_settings
from schemas import GatewayConfigured


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _describe(e) -> str:
    verb = "configured" if isinstance(e, GatewayConfigured) else "removed"
    return f"{_when(e.occurred_at)}  {e.operator:12} {verb:10} {e.kind}/{e.name}"


async def apply(cfg: Config, desired: Config, operator: str | None, dry_run: bool) -> int:
    state, _ = await read_state(cfg)
    events = diff(state, desired, operator)
    for e in events:
        print(_describe(e))
    if not events:
        print("no changes")
    elif not dry_run:
        await append(cfg, events)
        print(f"{len(events)} change(s) applied to mail.config")
    return 0


async def history(cfg: Config, as_json: bool) -> int:
    _, events = await read_state(cfg)
    for e in events:
        if as_json:
            d = {"type": type(e).__name__, "at": e.occurred_at, "operator": e.operator, "kind": e.kind,
                 "name": e.name}
            print(json.dumps(d))
        else:
            print(_describe(e))
    return 0


async def gateways(cfg: Config) -> int:
    state, _ = await read_state(cfg)
    live = effective_config(cfg, state)
    print(f"{'kind':9} {'name':16} {'mode':17} {'status':9} target / domains")
    for g in live.outbound_gateways:
        print(f"{'outbound':9} {g.name:16} {g.mode:17} {g.status:9} {g.address}:{g.port} ({g.encryption})"
              + (f" auth={g.auth_username}" if g.auth_username else ""))
    for g in live.inbound_gateways:
        print(f"{'inbound':9} {g.name:16} {g.mode:17} {g.status:9} {','.join(g.primary_addresses)}:{g.primary_port}"
              f" {g.domain_verification.mode}={','.join(g.domain_verification.domains)}")
    return 0


async def set_status(cfg: Config, kind: str, name: str, status: str, operator: str | None) -> int:
    state, _ = await read_state(cfg)
    live = effective_config(cfg, state)
    field, _ = KINDS[kind]
    gws = getattr(live, field)
    if not any(g.name == name for g in gws):
        raise ConfigError(f"no {kind} gateway named {name!r}")
    changed = [g.model_copy(update={"status": status}) if g.name == name else g for g in gws]
    desired = live.model_copy(update={field: changed})
    # The first change seeds mail.config with every gateway of the file: from then on the topic is authoritative.
    await append(cfg, diff(state, desired, operator))
    print(f"{kind}/{name} {status}")
    return 0


async def add(cfg: Config, kind: str, settings: dict, operator: str | None) -> int:
    state, _ = await read_state(cfg)
    live = effective_config(cfg, state)
    field, model = KINDS[kind]
    gw = model.model_validate(settings)
    others = [g for g in getattr(live, field) if g.name != gw.name]
    desired = live.model_copy(update={field: others + [gw]})
    stored_settings(gw, f"{field}.{gw.name}")  # refuses clear-text secrets early, with the key path
    await append(cfg, diff(state, desired, operator))
    print(f"{kind}/{gw.name} configured")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.action == "apply":
        return asyncio.run(apply(cfg, load_config(args.file), args.operator, args.dry_run))
    if args.action == "history":
        return asyncio.run(history(cfg, args.json))
    from mailgate.core.secrets import new_key
    print(new_key())
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.action == "list":
        return asyncio.run(gateways(cfg))
    if args.action in ("enable", "disable"):
        return asyncio.run(set_status(cfg, args.kind, args.name, args.action + "d", args.operator))
    if args.action == "add":
        return asyncio.run(add(cfg, args.kind, json.loads(args.settings), args.operator))
    from egress.verify import print_verify
    return asyncio.run(print_verify(cfg, args.name))


def register(sub, with_config) -> None:
    c = with_config(sub.add_parser("config", help="configuration as audited events in mail.config"))
    c.add_argument("action", choices=["apply", "history", "keygen"])
    c.add_argument("file", nargs="?", help="apply: the YAML file whose gateways become the running ones")
    c.add_argument("--dry-run", action="store_true", help="apply: print the changes, write nothing")
    c.add_argument("--operator", help="who makes the change (default: the OS user)")
    c.add_argument("--json", action="store_true", help="history: one JSON object per change")
    c.set_defaults(func=cmd_config)
    g = with_config(sub.add_parser("gateway", help="list, add, enable, disable or verify gateways"))
    g.add_argument("action", choices=["list", "add", "enable", "disable", "verify"])
    g.add_argument("name", nargs="?", help="gateway name")
    g.add_argument("--kind", choices=list(KINDS), default="outbound", help="inbound or outbound (default)")
    g.add_argument("--settings", help="add: the gateway's settings as JSON (secrets as {\"env\": NAME})")
    g.add_argument("--operator", help="who makes the change (default: the OS user)")
    g.set_defaults(func=cmd_gateway)
