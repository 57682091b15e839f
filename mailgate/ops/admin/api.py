"""The JSON API's handlers: session, gateways, message trace, events, queue and quarantine.

Reads: the request (JSON bodies, query parameters) and, through the operator modules, `mail.config`, `mail.events`
and `mail.quarantine`. Emits: JSON responses; gateway changes and quarantine releases/deletes as events, with the
logged-in administrator as operator. Errors are `{"error": text}` (plus `fields` for validation, `verify` for a
failed "verify connection before save"); no response ever holds a secret.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
from typing import Any

from aiohttp import web

from mailgate.ops import quarantine

from mailgate.core import topics
from mailgate.ops.admin import auth, gateways
from mailgate.ops.audit.reader import Undecodable, describe, json_of, read_events, read_topic
from mailgate.core.config import Config
from mailgate.ops.audit.events_cli import EventFilter
from mailgate.ops.audit.timespec import TimeSpecError, parse_time
from mailgate.core.ids import now_ms
from mailgate.ops.queue.view import build as build_queue

CFG = web.AppKey("cfg", Config)
SESSIONS = web.AppKey("sessions", auth.Sessions)
SESSION = web.RequestKey("session", auth.Session)
routes = web.RouteTableDef()


def error(status: int, text: str, **extra: Any) -> web.Response:
    return web.json_response({"error": text, **extra}, status=status)


async def body(request: web.Request) -> dict:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}', content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}', content_type="application/json")
    try:  # JSON's \ud800-style escapes can make lone surrogates, which no UTF-8 record or log line can hold
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise web.HTTPBadRequest(text='{"error": "the body has text that is not valid Unicode (a lone surrogate)"}',
                                 content_type="application/json") from None
    return data


def operator(request: web.Request) -> str:
    return request[SESSION].username


# --- session ---------------------------------------------------------------------------------------------------

@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    data = await body(request)
    cfg = request.app[CFG].admin
    user, password = str(data.get("username", "")), str(data.get("password", ""))
    ok = await asyncio.get_running_loop().run_in_executor(None, auth.check_password, password, cfg.password_hash)
    if not (ok and hmac.compare_digest(user.encode(), cfg.username.encode())):
        await asyncio.sleep(0.3)  # slows guessing; the scrypt cost does the rest
        return error(401, "wrong username or password")
    token, s = request.app[SESSIONS].create(user)
    resp = web.json_response({"username": s.username, "csrf_token": s.csrf_token})
    resp.set_cookie(auth.COOKIE, token, httponly=True, samesite="Strict", path="/", max_age=cfg.session_ttl_s,
                    secure=request.secure)
    return resp


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].drop(request.cookies.get(auth.COOKIE))
    resp = web.json_response({"ok": True})
    resp.del_cookie(auth.COOKIE, path="/")
    return resp


@routes.get("/api/session")
async def session(request: web.Request) -> web.Response:
    s = request[SESSION]
    return web.json_response({"username": s.username, "csrf_token": s.csrf_token})


# --- gateways --------------------------------------------------------------------------------------------------

@routes.get("/api/gateways")
async def list_gateways(request: web.Request) -> web.Response:
    return web.json_response({"gateways": await gateways.list_gateways(request.app[CFG])})


@routes.post("/api/gateways")
async def create_gateway(request: web.Request) -> web.Response:
    data = await body(request)
    kind = str(data.get("kind", ""))
    if kind not in gateways.KINDS:  # a field of the document, not a resource: invalid input, not "not found"
        raise gateways.GatewayInvalid({"kind": f"must be one of {sorted(gateways.KINDS)}"})
    doc = await gateways.save(request.app[CFG], kind, data, operator(request), create=True)
    return await _versioned(request, web.json_response(doc, status=201))


@routes.post("/api/gateways/verify")
async def verify_gateway(request: web.Request) -> web.Response:
    """Verify connection of an unsaved outbound gateway document (nothing is stored)."""
    data = await body(request)
    cfg = request.app[CFG]
    old = await gateways.find(cfg, "outbound", str(data["name"])) if data.get("name") else None  # stored password
    gw = gateways.validate("outbound", {**data, "verify_before_save": False}, old)
    return web.json_response(await gateways.verify(gw, cfg.delivery))


@routes.get("/api/gateways/{kind}/{name}")
async def get_gateway(request: web.Request) -> web.Response:
    m = request.match_info
    return web.json_response(await gateways.get_gateway(request.app[CFG], m["kind"], m["name"]))


@routes.put("/api/gateways/{kind}/{name}")
async def update_gateway(request: web.Request) -> web.Response:
    m = request.match_info
    doc = await gateways.save(request.app[CFG], m["kind"], await body(request), operator(request), create=False,
                              name=m["name"])
    return await _versioned(request, web.json_response(doc))


@routes.post("/api/gateways/{kind}/{name}/status")
async def gateway_status(request: web.Request) -> web.Response:
    m = request.match_info
    status = (await body(request)).get("status")
    if status not in ("enabled", "disabled"):
        return error(422, "status must be enabled or disabled", fields={"status": "enabled or disabled"})
    return await _versioned(request, web.json_response(
        await gateways.set_status(request.app[CFG], m["kind"], m["name"], status, operator(request))))


@routes.delete("/api/gateways/{kind}/{name}")
async def delete_gateway(request: web.Request) -> web.Response:
    m = request.match_info
    await gateways.remove(request.app[CFG], m["kind"], m["name"], operator(request))
    return await _versioned(request, web.json_response({"ok": True}))


async def _versioned(request: web.Request, resp: web.Response) -> web.Response:
    """`resp` with the configuration version the change produced (X-Mailgate-Config-Version): the version every
    running stage reports on /metrics once it applies the change."""
    resp.headers["X-Mailgate-Config-Version"] = await gateways.live_version(request.app[CFG])
    return resp


# --- messages, events, queue -----------------------------------------------------------------------------------

def _event_json(e) -> dict:
    d = json_of(e)
    d.pop("body", None)
    d["summary"] = describe(e)
    return d


@routes.get("/api/messages/{message_id}")
async def trace(request: web.Request) -> web.Response:
    mid = request.match_info["message_id"]
    events = await read_events(request.app[CFG], mid)
    if not events:
        return error(404, f"no events for {mid}")
    return web.json_response({"message_id": mid, "events": [_event_json(e) for e in events]})


@routes.get("/api/events")
async def events(request: web.Request) -> web.Response:
    q = request.query
    try:
        since = parse_time(q["since"]) if q.get("since") else None
        limit = int(q.get("limit", "200"))
        if not 1 <= limit <= 2000:
            raise ValueError(f"limit must be 1 to 2000, not {limit}")
    except (TimeSpecError, ValueError) as err:
        return error(400, str(err))
    types = {t for v in q.getall("type", []) for t in v.split(",") if t}
    flt = EventFilter(types=types, domain=q.get("domain") or None, message_id=q.get("message_id") or None)
    out: list = []
    start = max(since, 0) if since is not None else None  # before 1970: from the start (Kafka has no earlier time)
    async for _, e in read_topic(request.app[CFG], topics.EVENTS, since_ms=start):
        if since is not None and not isinstance(e, Undecodable) and e.occurred_at < since:
            continue
        if flt.matches(e):
            out.append(e)
    out.sort(key=lambda e: getattr(e, "occurred_at", None) or getattr(e, "timestamp", 0))
    return web.json_response({"events": [_event_json(e) for e in out[-limit:]], "total": len(out)})


@routes.get("/api/queue")
async def queue(request: web.Request) -> web.Response:
    rows = (await build_queue(request.app[CFG])).shape(now_ms())
    return web.json_response({"rows": rows, "messages": sum(r["messages"] for r in rows),
                              "recipients": sum(r["recipients"] for r in rows)})


# --- quarantine ------------------------------------------------------------------------------------------------

@routes.get("/api/quarantine")
async def quarantine_list(request: web.Request) -> web.Response:
    held = await quarantine.held(request.app[CFG])
    return web.json_response({"messages": [
        {"message_id": mid, "quarantined_at": q.occurred_at, "level": q.level, "score": q.total_score,
         "from": quarantine._header(q.headers, "From"), "subject": quarantine._header(q.headers, "Subject")}
        for mid, q in held.items()]})


async def _quarantine_action(request: web.Request, action: str) -> web.Response:
    cfg, mid = request.app[CFG], request.match_info["message_id"]
    held = (await quarantine.held(cfg)).get(mid)
    if held is None:
        return error(404, f"{mid} is not in quarantine (never held, or already released or deleted)")
    confirmed = request.query.get("confirm_malware") == "true"
    if action == "release":
        try:
            quarantine.check_release(held, confirmed)
        except quarantine.MalwareNotConfirmed as err:
            return error(409, str(err).replace("--confirm-malware", "confirm_malware=true"))
    with contextlib.redirect_stdout(io.StringIO()):  # the operator commands print for a terminal
        if action == "release":
            await quarantine.cmd_release(cfg, mid, operator(request), confirm_malware=confirmed)
        else:
            await quarantine.cmd_delete(cfg, mid, operator(request))
    return web.json_response({"message_id": mid, "result": action + "d"})


@routes.post("/api/quarantine/{message_id}/release")
async def quarantine_release(request: web.Request) -> web.Response:
    return await _quarantine_action(request, "release")


@routes.delete("/api/quarantine/{message_id}")
async def quarantine_delete(request: web.Request) -> web.Response:
    return await _quarantine_action(request, "delete")
