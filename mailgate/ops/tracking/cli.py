"""Operator commands on the tracking store: `tracker`, `search`, and the store-backed `trace`, `queue`, `queue list`
(`quarantine` reads the store in `mailgate.ops.quarantine`).

Reads: the tracking store (`Store.open(create=False)`: readers never create or migrate it). When the store cannot
be opened (no tracker ever ran, the server is down), `trace` and `queue` say so on stderr and scan
mail.events as before; `--from-log` asks for that scan outright. `search` has no log fallback. Emits: lines for
people, or JSON with `--json`.
"""
from __future__ import annotations

from mailgate.ops.cli import command, exits

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

from mailgate.core.config import Config
from mailgate.ops.tracking import queries
from mailgate.ops.tracking.store import Store, StoreUnavailable


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def open_store(cfg: Config) -> Store | None:
    """The store for reading, or None (reason on stderr) so the caller can scan the log instead."""
    try:
        return Store.open(cfg, create=False)
    except StoreUnavailable as err:
        print(f"mailgate: {err}; scanning mail.events instead", file=sys.stderr)
        return None


# --- trace ---------------------------------------------------------------------------------------------------

def status_lines(state: str, recipients: list[dict]) -> list[str]:
    """The end of a text trace: the message's state and each recipient's, with its last reply."""
    return [f"state: {state}"] + [f"  {r['recipient']}: {r['state']}" + (f" ({r['reply']})" if r.get("reply") else "")
                                  for r in sorted(recipients, key=lambda r: r["recipient"])]


def _folded_status(events: list) -> list[str]:
    """status_lines for events read from the log, folded as the tracker folds them."""
    import dataclasses
    from mailgate.ops.tracking.projector import fold
    named = [(type(e).__name__, dataclasses.asdict(e)) for e in events
             if dataclasses.is_dataclass(e) and getattr(e, "message_id", None)]
    if not named:
        return []
    state, rc = fold(named)
    return status_lines(state, [{"recipient": r, "state": st, "reply": reply} for r, (st, reply, _) in rc.items()])


def store_note(cfg: Config, store: Store) -> str | None:
    """Why the store's answer cannot be trusted to be complete (being rebuilt, or built from another log), else None.
    Asks Kafka only when the store itself recorded nothing (a tracker that never started against this log)."""
    from mailgate.core import topics
    from mailgate.ops.tracking.log_identity import mismatch, read_log
    from mailgate.ops.tracking.rebuild import REBUILD_HINT, reader_note
    note = reader_note(store)
    if note:
        return note
    try:
        live = asyncio.run(read_log(cfg, topics.EVENTS, wait_s=5))
    except Exception:  # Kafka unreachable: the store is all there is to read
        return None
    reason = mismatch(store.state(), store.positions(topics.EVENTS), live, topics.EVENTS)
    return f"the tracking store does not belong to this Kafka log ({reason}); {REBUILD_HINT}" if reason else None


def trace(cfg: Config, message_id: str, as_json: bool = False, from_log: bool = False) -> int:
    from mailgate.ops.audit.reader import describe, json_of, read_events
    store = None if from_log else open_store(cfg)
    events: list = []
    if store is not None:
        try:
            events = queries.events(store, message_id)
            m = queries.message(store, message_id)
            note = None if events else store_note(cfg, store)
        finally:
            store.close()
        if note:
            print(f"mailgate: {note}; scanning mail.events instead", file=sys.stderr)
            store = None
        elif not events:
            print(f"no events for {message_id} in the tracking store (`--from-log` scans mail.events)")
            return 1
        else:
            status = status_lines(m["state"], m["recipient_states"]) if m and not as_json else []
    if store is None:
        events = asyncio.run(read_events(cfg, message_id))
        status = [] if as_json else _folded_status(events)
        if not events:
            print(f"no events for {message_id}")
            return 1
    for e in events:
        print(json.dumps(json_of(e)) if as_json else describe(e))
    for line in status:
        print(line)
    return 0


# --- search --------------------------------------------------------------------------------------------------

def search_from_args(args: argparse.Namespace) -> queries.Search:
    from mailgate.ops.audit.timespec import parse_time
    return queries.Search(sender=args.sender, recipient=args.recipient, domain=args.domain,
                          since_ms=parse_time(args.since) if args.since else None,
                          until_ms=parse_time(args.until) if args.until else None, state=args.state,
                          client=args.client, gateway=args.gateway, header_message_id=args.message_id_header,
                          virus=args.virus, limit=args.limit, offset=args.offset)


def _recipients(r: dict) -> str:
    """The recipients; each with its own state when they differ (a partial delivery)."""
    rs = r.get("recipient_states") or []
    if len({x["state"] for x in rs}) < 2:
        return r["recipients"] or "-"
    return ", ".join(f"{x['recipient']} ({x['state']})" for x in rs)


def render_search(rows: list[dict]) -> str:
    lines = [f"{'RECEIVED (UTC)':19}  {'MESSAGE ID':26}  {'STATE':11}  FROM -> TO  [SUBJECT]"]
    for r in rows:
        subject = f"  [{r['subject']}]" if r.get("subject") else ""
        if r["state"] == "refused":  # a connection refused before any transaction, or a message at DATA
            envelope = f"<{r['mail_from']}> -> {r['recipients']} " if r.get("mail_from") is not None else ""
            lines.append(f"{_when(r['received_at']):19}  {r['message_id']:26}  {r['state']:11}  "
                         f"[{r['client_address']}] {envelope}{r['last_reply'] or r['last_reason'] or ''}")
            continue
        dsn = f"  (DSN {r['dsn_request']})" if r.get("dsn_request") else ""
        virus = f"  virus {r['virus']}" if r.get("virus") and r["virus"] != "clean" else ""
        lines.append(f"{_when(r['received_at']):19}  {r['message_id']:26}  {r['state']:11}  "
                     f"<{r['mail_from'] or ''}> -> {_recipients(r)}{subject}{dsn}{virus}")
    lines.append(f"{len(rows)} message(s)")
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace) -> int:
    cfg = command.load(args)
    s = search_from_args(args)
    try:
        store = Store.open(cfg, create=False)
    except StoreUnavailable as err:
        raise exits.OperatorError(str(err)) from None
    try:
        rows = queries.search(store, s)
        note = store_note(cfg, store) if not rows or "rebuild" in store.state() or "mismatch" in store.state() \
            else None
    finally:
        store.close()
    if note and (not rows or "does not belong" in note):
        raise exits.OperatorError(note)  # said as one line, `mailgate search: ...`, by the CLI's one error path
    if note:
        print(f"mailgate search: {note}; the answer may be incomplete", file=sys.stderr)
    print(json.dumps(rows) if args.json else render_search(rows))
    return 0


# --- queue ---------------------------------------------------------------------------------------------------

def render_queue_list(rows: list[dict]) -> str:
    """Like `postqueue -p`: id, size, arrival, sender; then each recipient, under the reason it waits."""
    if not rows:
        return "Mail queue is empty"
    out = [f"{'-Queue ID-':26} {'--Size--':>8} {'----Arrival Time----':20} -Sender/Recipient-------"]
    for m in rows:
        out.append(f"{m['message_id']:26} {m['size_bytes'] or 0:>8} {_when(m['received_at']):20} "
                   f"{m['mail_from'] or '<>'}")
        pad = " " * 57
        out.append(f"{pad}({m['destination'] or 'unrouted'}, {m['tier'] or 'active'}"
                   f"{', ' + m['last_reason'] if m['last_reason'] else ''})")
        out += [f"{pad}  {r['recipient']}" for r in m["recipients"]]
        out.append("")
    n = sum(len(m["recipients"]) for m in rows)
    out.append(f"-- {len(rows)} message(s), {n} recipient(s) waiting")
    return "\n".join(out)


def queue(cfg: Config, action: str | None, as_json: bool = False, from_log: bool = False) -> int:
    from mailgate.core.ids import now_ms
    from mailgate.ops.queue.view import render, show_queue
    store = None if from_log else open_store(cfg)
    if store is None:
        if action == "list":
            raise exits.OperatorError("`queue list` needs the tracking store")
        return asyncio.run(show_queue(cfg, as_json=as_json))
    try:
        if action == "list":
            rows = queries.queue_list(store)
            print(json.dumps(rows) if as_json else render_queue_list(rows))
            return 0
        shape = queries.waiting(store).shape(now_ms())
    finally:
        store.close()
    print(json.dumps(shape) if as_json else render(shape))
    return 0


# --- registration --------------------------------------------------------------------------------------------

def cmd_tracker(args: argparse.Namespace) -> int:
    from mailgate.ops.tracking.runner import run
    run(command.load(args), rebuild=args.rebuild)
    return 0


def register(sub, with_config) -> None:
    """Add `tracker` and `search` to the `mailgate` command."""
    t = with_config(sub.add_parser("tracker", help="keep the message-tracking store current from mail.events"))
    t.add_argument("--rebuild", action="store_true",
                   help="empty the store first and project the whole log again (stop other replicas first)")
    t.set_defaults(func=cmd_tracker)
    s = with_config(sub.add_parser("search", help="find messages in the tracking store"))
    s.add_argument("--sender", help="envelope sender (exact address, any case)")
    s.add_argument("--recipient", help="a recipient (exact address, any case)")
    s.add_argument("--domain", help="sender or recipient domain")
    s.add_argument("--since", help="received at or after: ISO 8601 (naive = UTC) or an age like 2h")
    s.add_argument("--until", help="received at or before: ISO 8601 or an age")
    s.add_argument("--state", choices=queries.STATES, help="a recipient of the message is in this state")
    s.add_argument("--client", help="client IP address that sent it to us")
    s.add_argument("--gateway", help="inbound or outbound gateway name")
    s.add_argument("--message-id-header", help="the Message-ID header (with or without <>)")
    s.add_argument("--virus", choices=queries.VIRUS_RESULTS, help="the virus scan's result")
    s.add_argument("--limit", type=int, default=100, help="at most this many messages (newest first)")
    s.add_argument("--offset", type=int, default=0, help="skip this many (paging)")
    s.add_argument("--json", action="store_true", help="a JSON array of message rows")
    s.set_defaults(func=cmd_search)
