"""`mailgate config apply|history|keygen|version` and `mailgate gateway list|add|disable|enable|verify`.

Reads: the YAML file and `mail.config`. Emits: GatewayConfigured / GatewayRemoved events to `mail.config` (running
stages follow it), printed diffs and history. Every change names its operator (`--operator`, default the OS user).
"""
from __future__ import annotations

from mailgate.ops.cli import command, exits

import argparse
import asyncio
import json
from datetime import datetime, timezone

from mailgate.core.config import Config, ConfigError, load_config
from mailgate.core.config_events import KINDS, config_version, effective_config, read_state, state_key
from mailgate.ops.settings.config_writer import append, diff, non_live_changes, stored_settings
from mailgate.ops.cli.exits import UsageError
from processors.spam.policy import check_gateway_actions
from schemas import GatewayRemoved


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _describe(e) -> str:
    verb = "removed" if isinstance(e, GatewayRemoved) else "configured"
    return f"{_when(e.occurred_at)}  {e.operator:12} {verb:10} {state_key(e)}"


def refusal(cfg: Config, desired: Config) -> str | None:
    """Why `desired` cannot be applied to running stages, or None: a setting no stage applies live differs from
    the running file (`cfg`), or a spam action could never be applied."""
    fixed = non_live_changes(cfg, desired)
    if fixed:
        return (f"refused: {', '.join(fixed)} cannot change while the stages run (only gateways, spam and "
                f"ingress.relay_networks are applied live); change the stages' file and restart them")
    try:
        check_gateway_actions(desired)
    except ConfigError as err:
        return f"refused: {err}"
    return None


async def apply(cfg: Config, desired: Config, operator: str | None, dry_run: bool) -> int:
    reason = refusal(cfg, desired)
    if reason is not None:
        raise exits.OperatorError(reason)
    state, _ = await read_state(cfg)
    events = diff(state, desired, operator, running=effective_config(cfg, state))
    for e in events:
        print(_describe(e))
    if not events:
        print("no changes")
    elif not dry_run:
        await append(cfg, events)
        print(f"{len(events)} change(s) applied to mail.config; configuration version {config_version(desired)}")
    return 0


async def history(cfg: Config, as_json: bool) -> int:
    _, events = await read_state(cfg)
    for e in events:
        if as_json:
            key = state_key(e)
            d = {"type": type(e).__name__, "at": e.occurred_at, "operator": e.operator,
                 "kind": key.split("/")[0], "name": key.split("/", 1)[1]}
            print(json.dumps(d))
        else:
            print(_describe(e))
    return 0


async def gateways(cfg: Config, as_json: bool = False) -> int:
    state, _ = await read_state(cfg)
    live = effective_config(cfg, state)
    if as_json:
        rows = [{"kind": kind, **g.model_dump(mode="json", exclude={"auth_password", "smartermail"})}
                for kind, gws in (("outbound", live.outbound_gateways), ("inbound", live.inbound_gateways))
                for g in gws]
        print(json.dumps(rows))
        return 0
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
        raise UsageError(f"no {kind} gateway named {name!r}")
    changed = [g.model_copy(update={"status": status}) if g.name == name else g for g in gws]
    desired = live.model_copy(update={field: changed})
    # The first change seeds mail.config with every gateway of the file: from then on the topic is authoritative.
    await append(cfg, diff(state, desired, operator, running=live))
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
    await append(cfg, diff(state, desired, operator, running=live))
    print(f"{kind}/{gw.name} configured")
    return 0


async def version(cfg: Config, endpoints: list[str], as_json: bool) -> int:
    """The version of the configuration in mail.config and, for each stage endpoint given, the one it applies:
    exit 0 when every endpoint applies the log's version, 1 otherwise."""
    state, _ = await read_state(cfg)
    want = config_version(effective_config(cfg, state))
    applied = {url: await _applied_version(url) for url in endpoints}
    if as_json:
        print(json.dumps({"version": want, "applied": applied}))
    else:
        print(f"mail.config: configuration version {want}")
        for url, have in applied.items():
            print(f"  {url}: {have or 'unreachable'}{'' if have == want else '  (not yet applied)'}")
    return 0 if all(v == want for v in applied.values()) else 1


async def _applied_version(url: str) -> str | None:
    import httpx
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(url.rstrip("/") + "/metrics")).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("mailgate_config_version_info{") and line.rstrip().endswith(" 1.0"):
            return line.split('version="', 1)[1].split('"', 1)[0]
    return None


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "check":
        from mailgate.ops.settings.config_check import check
        return check(args.file, as_json=args.json)
    cfg = command.load(args)
    if args.action == "apply":
        if not args.file:
            raise UsageError("config apply needs the FILE whose gateways become the running ones")
        return asyncio.run(apply(cfg, load_config(args.file), args.operator, args.dry_run))
    if args.action == "version":
        return asyncio.run(version(cfg, args.metrics or [], args.json))
    if args.action == "history":
        return asyncio.run(history(cfg, args.json))
    from mailgate.core.secrets import new_key
    print(new_key())
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    if args.action == "list":
        return asyncio.run(gateways(cfg, args.json))
    if args.action in ("enable", "disable"):
        return asyncio.run(set_status(cfg, args.kind, args.name, args.action + "d", args.operator))
    if args.action == "add":
        return asyncio.run(add(cfg, args.kind, json.loads(args.settings), args.operator))
    from egress.gateway_probe import print_verify
    if not any(g.name == args.name for g in cfg.outbound_gateways):
        raise UsageError(f"no outbound gateway named {args.name!r}")
    return asyncio.run(print_verify(cfg, args.name))


def register(sub, with_config) -> None:
    c = with_config(sub.add_parser("config", help="configuration as audited events in mail.config"))
    c.add_argument("action", choices=["apply", "history", "keygen", "check", "version"])
    c.add_argument("file", nargs="?", help="apply: the YAML file whose gateways become the running ones; "
                                           "check: the file to check (default: the --config file)")
    c.add_argument("--dry-run", action="store_true", help="apply: print the changes, write nothing")
    c.add_argument("--operator", help="who makes the change (default: the OS user)")
    c.add_argument("--json", action="store_true", help="history: one JSON object per change; check, version: JSON")
    c.add_argument("--metrics", action="append", metavar="URL",
                   help="version: a stage's metrics endpoint (http://host:port) to compare; repeatable")
    c.set_defaults(func=cmd_config)
    g = with_config(sub.add_parser("gateway", help="list, add, enable, disable or verify gateways"))
    g.add_argument("action", choices=["list", "add", "enable", "disable", "verify"])
    g.add_argument("name", nargs="?", help="gateway name")
    g.add_argument("--kind", choices=list(KINDS), default="outbound", help="inbound or outbound (default)")
    g.add_argument("--settings", help="add: the gateway's settings as JSON (secrets as {\"env\": NAME})")
    g.add_argument("--operator", help="who makes the change (default: the OS user)")
    g.add_argument("--json", action="store_true", help="list: the gateways as a JSON array")
    g.set_defaults(func=cmd_gateway)
