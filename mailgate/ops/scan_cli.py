"""`mailgate scan FILE`: run a message file through the scan step's verdict and print it.

Reads: the file (an RFC 5322 message, or any file), the configuration file's `antivirus` section (its clamd hosts
and limits; antivirus need not be enabled) and one inbound gateway's `virus` actions and attachment rules
(`--gateway`, default the first; `--outbound`: `antivirus.outbound`). Emits: the verdict on stdout — result,
signatures or reason, the clamd host, the time, the action the processor would take, the attachment rules that
matched — or with `--json` one JSON object. Exit status 0 clean, 1 infected or unscannable; no clamd answering, an
unreadable file or an unknown gateway are one line on stderr (exit 4, 2, 2). Nothing is written to Kafka, and Kafka
is not asked.
"""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from mailgate.core.config import Config, VirusActions
from mailgate.mail.antivirus.clamd import ClamdClient, ScannerUnavailable
from mailgate.mail.antivirus.scan import Verdict, scan_message
from mailgate.ops.cli import command, exits


class ScannerDown(exits.OperatorError):
    exit_status = exits.UNAVAILABLE


def _actions(cfg: Config, gateway: str | None, outbound: bool) -> tuple[str, VirusActions]:
    if outbound:
        return "outbound", cfg.antivirus.outbound
    gws = cfg.inbound_gateways
    if gateway is None:
        return (f"gateway {gws[0].name}", gws[0].virus) if gws else ("defaults", VirusActions())
    gw = next((g for g in gws if g.name == gateway), None)
    if gw is None:
        names = ", ".join(g.name for g in gws) or "none"
        raise exits.UsageError(f"no inbound gateway {gateway!r} (configured: {names})")
    return f"gateway {gw.name}", gw.virus


def would_do(verdict: Verdict, actions: VirusActions) -> str:
    from processors.virus.policy import choose_action  # the processor's own choice, not a copy of it
    return choose_action(verdict, actions)


def render(path: str, verdict: Verdict, action: str, whose: str) -> str:
    lines = [f"{path}: {verdict.summary()}",
             f"  scanner {verdict.scanner or '-'} in {verdict.duration_s * 1000:.0f} ms",
             f"  action ({whose}): {action}"]
    lines += [f"  failed: {f}" for f in verdict.failed]
    lines += [f"  rule {f.rule}: {f.path} ({f.why}) -> {f.action}" for f in verdict.findings]
    return "\n".join(lines)


def cmd_scan(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    whose, actions = _actions(cfg, args.gateway, args.outbound)
    try:
        data = Path(args.file).read_bytes()
    except OSError as err:
        raise exits.UsageError(f"cannot read {args.file}: {err.strerror}") from None
    try:
        verdict = asyncio.run(scan_message(cfg.antivirus, data, ClamdClient(cfg.antivirus), actions.attachments))
    except ScannerUnavailable as err:
        raise ScannerDown(f"no clamd answered: {err}") from None
    action = would_do(verdict, actions)
    if args.json:
        print(json.dumps({"file": args.file, "result": verdict.result, "signatures": list(verdict.signatures),
                          "reason": verdict.reason, "scanner": verdict.scanner,
                          "duration_ms": int(verdict.duration_s * 1000), "action": action, "actions_of": whose,
                          "failed_scanners": list(verdict.failed),
                          "findings": [{"path": f.path, "detected_type": f.detected_type, "rule": f.rule,
                                        "why": f.why, "action": f.action} for f in verdict.findings]}))
    else:
        print(render(args.file, verdict, action, whose))
    return exits.OK if verdict.result == "clean" else exits.FAILURE


def register(sub, with_config) -> None:
    s = with_config(sub.add_parser("scan", help="scan a message file with clamd and the attachment rules"))
    s.add_argument("file", help="the message (RFC 5322) or any file")
    s.add_argument("--gateway", help="whose virus actions and attachment rules (default: the first inbound gateway)")
    s.add_argument("--outbound", action="store_true", help="use antivirus.outbound's actions instead")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=cmd_scan)
