"""The admin API's queue control: hold, release, delete, bounce and flush messages; suspend, resume and flush
destinations; list the suspended ones. Each answer says what was done (counts, which egress replicas applied it).

Reads: JSON bodies (`reason` required; `message_ids`, or a `filter` whose match count is returned without acting
unless `confirm` is true). Emits: the commands through `mailgate.ops.queue.commands`, with the logged-in
administrator as operator. Mounted by the admin server next to the other API routes.
"""
from __future__ import annotations

from aiohttp import web

from mailgate.mail.queue_commands import DESTINATION_KINDS, MESSAGE_COMMANDS
from mailgate.ops.queue import commands as qc
from mailgate.ops.admin.api import CFG, body, error, operator
from mailgate.core.ids import now_ms

routes = web.RouteTableDef()
MAX_UNTIL_MS = 253402300799999
"""9999-12-31T23:59:59.999Z: the latest `until` a suspension can carry."""


@routes.post("/api/queue/commands")
async def queue_command(request: web.Request) -> web.Response:
    data = await body(request)
    cfg, command = request.app[CFG], str(data.get("command", ""))
    if command not in MESSAGE_COMMANDS:
        return error(422, f"command must be one of {', '.join(MESSAGE_COMMANDS)}", fields={"command": command})
    if (bad := _invalid(data)) is not None:
        return bad
    ids = [str(i) for i in data.get("message_ids") or []]
    flt = data.get("filter") or {}
    if flt:
        ids = await qc.select(cfg, flt.get("destination"), flt.get("domain"), flt.get("tier"))
        if not data.get("confirm") or not ids:  # nothing matched: nothing to do, and nothing wrong with the ask
            return web.json_response({"command": command, "matched": len(ids), "applied": False})
    try:
        applied = await qc.message_command(cfg, command, ids, str(data.get("reason", "")), operator(request),
                                           float(data.get("timeout_s", 60)))
    except qc.QueueCommandError as err:
        return error(422, str(err))
    return web.json_response({"command": command, "matched": len(ids), "applied": True, **applied.as_dict()})


FILTER_KEYS = ("destination", "domain", "tier")
"""What a queue command's `filter` may name (qc.select's arguments); the handler and the OpenAPI description."""


def _invalid(data: dict) -> web.Response | None:
    """A 422 for a body field of the wrong shape (so it never reaches a conversion that would fail), or None."""
    reason, timeout = data.get("reason"), data.get("timeout_s", 60)
    if not isinstance(reason, str) or not reason.strip():
        return error(422, "a reason is required (it goes into the audit log)", fields={"reason": "not blank"})
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        return error(422, "timeout_s must be a number of seconds, at most 600", fields={"timeout_s": str(timeout)})
    ids, flt = data.get("message_ids"), data.get("filter")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) and i for i in ids)):
        return error(422, "message_ids must be a list of message ids", fields={"message_ids": "list of strings"})
    if flt is not None and not (isinstance(flt, dict) and flt and set(flt) <= set(FILTER_KEYS)
                                and all(isinstance(v, str) and v for v in flt.values())):
        return error(422, "filter must map destination, domain or tier to text", fields={"filter": "object"})
    return None


@routes.get("/api/destinations")
async def destinations(request: web.Request) -> web.Response:
    state, now = await qc.control_state(request.app[CFG]), now_ms()
    return web.json_response({"suspended": [
        {"kind": s.kind, "name": s.name, "until": s.until, "since": s.occurred_at, "operator": s.operator,
         "reason": s.reason} for s in state.suspensions.values() if s.until is None or s.until > now]})


@routes.post("/api/destinations/{kind}/{name}/{action}")
async def destination_command(request: web.Request) -> web.Response:
    m = request.match_info
    if m["kind"] not in DESTINATION_KINDS or m["action"] not in ("suspend", "resume", "flush"):
        return error(404, f"no destination action {m['kind']}/{m['action']}")
    data = await body(request)
    if (bad := _invalid(data)) is not None:
        return bad
    until = data.get("until")
    if until is not None and not (isinstance(until, (int, float)) and not isinstance(until, bool)  # 5.0 is JSON's 5
                                  and float(until).is_integer() and 0 <= until <= MAX_UNTIL_MS):
        return error(422, "until must be epoch milliseconds (or null)", fields={"until": str(until)})
    try:
        applied = await qc.destination_command(request.app[CFG], m["action"], m["kind"], m["name"],
                                               str(data.get("reason", "")), operator(request),
                                               int(until) if until is not None else None,
                                               float(data.get("timeout_s", 60)))
    except (qc.QueueCommandError, ValueError) as err:
        return error(422, str(err))
    return web.json_response({"action": m["action"], "kind": m["kind"], "name": m["name"], **applied.as_dict()})


def openapi_paths(op, json_, mutating_body) -> dict:
    """This module's paths for the OpenAPI document (built with openapi.py's helpers)."""
    result = json_({"type": "object", "description": "What was done: count, command_id, applied_by (egress "
                                                     "replicas that acknowledged), not_applied_by, seconds"})
    invalid = {"422": json_("Error", "unknown command, no reason, or no message")}
    return {
        "/api/queue/commands": {"post": op(
            "Hold, release, delete, bounce or flush messages (by id, or by filter: confirm=false only counts)",
            {"200": result, **invalid}, body={
                "type": "object", "required": ["command", "reason"], "additionalProperties": False,
                "anyOf": [{"required": ["message_ids"]}, {"required": ["filter"]}],
                "properties": {
                    "command": {"enum": list(MESSAGE_COMMANDS)},
                    "message_ids": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    "filter": {"type": "object", "minProperties": 1, "additionalProperties": False,
                               "properties": {k: {"type": "string", "minLength": 1} for k in FILTER_KEYS}},
                    "confirm": {"type": "boolean"}, "reason": mutating_body["properties"]["reason"],
                    "timeout_s": mutating_body["properties"]["timeout_s"]}}, mutating=True)},
        "/api/destinations": {"get": op("Suspended destinations", {"200": json_({"type": "object"})})},
        "/api/destinations/{kind}/{name}/{action}": {"post": op(
            "Suspend (optional `until`, epoch ms), resume or flush a destination",
            {"200": result, **invalid, "404": json_("Error", "no such destination kind or action")},
            params=[{"name": "kind", "in": "path", "required": True, "schema": {"enum": list(DESTINATION_KINDS)}},
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "action", "in": "path", "required": True,
                     "schema": {"enum": ["suspend", "resume", "flush"]}}],
            body=mutating_body, mutating=True)},
    }
