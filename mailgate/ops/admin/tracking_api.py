"""The admin API's message-tracking routes: search with filters and paging, a readable trace, dashboard series,
and the store-backed data of the older "Message trace" and "Queue" tabs (same shapes as /api/messages/{id} and
/api/queue, which scan mail.events; the page falls back to those on 503 and says so).

Reads: the tracking store (`mailgate tracker` keeps it), opened per request in a worker thread. Emits: JSON;
`503 {"error": ...}` when the store cannot be opened, `400` for a bad filter, `404` for an unknown message.
"""
from __future__ import annotations

import asyncio
import json

from aiohttp import web

from mailgate.core.ids import now_ms
from mailgate.ops.admin.api import CFG, _event_json, error
from mailgate.ops.audit.timespec import TimeSpecError, parse_time
from mailgate.ops.tracking import queries
from mailgate.ops.tracking.readable import readable
from mailgate.ops.tracking.store import Store, StoreUnavailable

routes = web.RouteTableDef()
MAX_PAGE = 500
MAX_OFFSET = 1_000_000_000


async def _with_store(request: web.Request, work):
    def run():
        store = Store.open(request.app[CFG], create=False)
        try:
            return work(store)
        finally:
            store.close()
    return await asyncio.to_thread(run)


def _nonempty(q, name: str) -> str | None:
    """A time or state parameter, absent or with a value: given empty it is refused (400), as the description says."""
    value = q.get(name)
    if value == "":
        raise ValueError(f"{name} is empty: give a value or leave it out")
    return value


def _search(q) -> queries.Search:
    state = _nonempty(q, "state")
    if state is not None and state not in queries.STATES:
        raise ValueError(f"state must be one of {', '.join(queries.STATES)}")
    return queries.Search(
        sender=q.get("sender") or None, recipient=q.get("recipient") or None, domain=q.get("domain") or None,
        since_ms=parse_time(since) if (since := _nonempty(q, "since")) is not None else None,
        until_ms=parse_time(until) if (until := _nonempty(q, "until")) is not None else None, state=state,
        client=q.get("client") or None, gateway=q.get("gateway") or None,
        header_message_id=q.get("message_id_header") or None,
        limit=_within(int(q.get("limit", "50")), 1, MAX_PAGE, "limit"),
        offset=_within(int(q.get("offset", "0")), 0, MAX_OFFSET, "offset"))


def _within(n: int, low: int, high: int, name: str) -> int:
    """`n`, or ValueError (answered 400) when it is outside low..high: out-of-range input is refused, not clamped."""
    if not low <= n <= high:
        raise ValueError(f"{name} must be {low} to {high}, not {n}")
    return n


@routes.get("/api/tracking/messages")
async def search(request: web.Request) -> web.Response:
    try:
        s = _search(request.query)
    except (TimeSpecError, ValueError) as err:
        return error(400, str(err))
    try:
        rows, total = await _with_store(request, lambda st: (queries.search(st, s), queries.count(st, s)))
    except StoreUnavailable as err:
        return error(503, str(err))
    return web.json_response({"messages": rows, "total": total, "limit": s.limit, "offset": s.offset})


def _trace(store: Store, mid: str) -> dict | None:
    m = queries.message(store, mid)
    if m is None:
        return None
    m["spam_scores"] = json.loads(m["spam_scores"]) if m["spam_scores"] else []
    m.pop("quarantine_headers", None)
    return {"message": m, "events": [readable(e) for e in queries.events(store, mid)]}


@routes.get("/api/tracking/messages/{message_id}")
async def trace(request: web.Request) -> web.Response:
    mid = request.match_info["message_id"]
    try:
        found = await _with_store(request, lambda st: _trace(st, mid))
    except StoreUnavailable as err:
        return error(503, str(err))
    if found is None:
        return error(404, f"no message {mid} in the tracking store")
    return web.json_response(found)


@routes.get("/api/tracking/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    try:
        minutes = _within(int(request.query.get("minutes", "60")), 5, 24 * 60, "minutes")
    except ValueError as err:
        return error(400, f"minutes must be a number from 5 to 1440 ({err})")
    try:
        data = await _with_store(request, lambda st: queries.dashboard(st, now_ms(), minutes))
    except StoreUnavailable as err:
        return error(503, str(err))
    return web.json_response(data)


# --- the older tabs, from the store ----------------------------------------------------------------------------

def _log_trace(store: Store, mid: str) -> dict | None:
    events = queries.events(store, mid)
    if not events:
        return None
    m = queries.message(store, mid)
    return {"message_id": mid, "source": "store", "events": [_event_json(e) for e in events],
            "state": m["state"] if m else None, "recipient_states": m["recipient_states"] if m else []}


@routes.get("/api/tracking/trace/{message_id}")
async def log_trace(request: web.Request) -> web.Response:
    """What /api/messages/{id} answers (the events as logged, with summaries), read from the store."""
    mid = request.match_info["message_id"]
    try:
        found = await _with_store(request, lambda st: _log_trace(st, mid))
    except StoreUnavailable as err:
        return error(503, str(err))
    if found is None:
        return error(404, f"no events for {mid} in the tracking store")
    return web.json_response(found)


@routes.get("/api/tracking/queue")
async def queue(request: web.Request) -> web.Response:
    """What /api/queue answers (waiting mail per destination and tier), read from the store."""
    try:
        rows = await _with_store(request, lambda st: queries.waiting(st).shape(now_ms()))
    except StoreUnavailable as err:
        return error(503, str(err))
    return web.json_response({"rows": rows, "messages": sum(r["messages"] for r in rows),
                              "recipients": sum(r["recipients"] for r in rows), "source": "store"})
