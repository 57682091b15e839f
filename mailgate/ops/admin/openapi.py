"""The OpenAPI 3.1 description of the admin API, served at /api/openapi.json (docs/openapi.json is a copy).

Reads: the pydantic gateway models (their JSON Schemas become the request bodies, so the description cannot drift
from validation). Emits: a dict. Regenerate the copy with `python -m mailgate.ops.admin.openapi > docs/openapi.json`.
"""
from __future__ import annotations

import json

from pydantic.json_schema import models_json_schema

from mailgate.core.config import InboundGateway, OutboundGateway
from mailgate.ops.admin.openapi_inputs import REASON, TIME_SPEC, tighten


def _json(schema: dict | str, description: str = "OK") -> dict:
    s = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": s}}}


def _body(schema: dict | str) -> dict:
    return {"required": True, **{k: v for k, v in _json(schema).items() if k != "description"}}


ERR = {"401": _json("Error", "not logged in"), "403": _json("Error", "missing or wrong X-CSRF-Token")}
CONFLICT = ("name taken (create), or settings that conflict: domain verification web_service without SmarterMail "
            "gateway mode, or a body whose kind is not the path's (fields names it)")
NOT_FOUND = {"404": _json("Error", "no such gateway / message")}
INVALID = {"422": _json("Error", "invalid: `fields` maps each field path to its message; `verify` tells the "
                                  "failed step of verify connection before save")}
KIND = {"name": "kind", "in": "path", "required": True, "schema": {"enum": ["inbound", "outbound"]}}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
MID = {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}
CONFIRM_MALWARE = {"name": "confirm_malware", "in": "query", "required": False,
                   "schema": {"type": "string", "enum": ["true", "false"]},
                   "description": "true: release a message the virus scan held (audited as confirmed)."}


def _op(summary: str, responses: dict, *, params: list | None = None, body: dict | str | None = None,
        mutating: bool = False) -> dict:
    op: dict = {"summary": summary, "responses": {**responses, **ERR}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = _body(body)
        op["responses"].setdefault("400", _json("Error", "the body is not a JSON object"))
    if mutating:
        op["security"] = [{"session": [], "csrf": []}]
    return op


def spec() -> dict:
    _, defs = models_json_schema([(OutboundGateway, "validation"), (InboundGateway, "validation")],
                                 ref_template="#/components/schemas/{model}")
    schemas = tighten(dict(defs.get("$defs", {})))
    schemas["Error"] = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"}, "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "verify": {"$ref": "#/components/schemas/VerifyResult"}}}
    schemas["VerifyResult"] = {"type": "object", "properties": {
        "gateway": {"type": "string"}, "ok": {"type": "boolean"},
        "step": {"type": ["string", "null"], "description": "connect, greeting, ehlo, starttls or auth"},
        "message": {"type": "string"}, "error": {"type": ["string", "null"]},
        "tls_version": {"type": ["string", "null"]}}}
    schemas["Event"] = {"type": "object", "description": "An audit event as JSON (bodies left out) with a "
                                                          "one-line `summary`.",
                        "properties": {"type": {"type": "string"}, "message_id": {"type": ["string", "null"]},
                                       "occurred_at": {"type": "integer"}, "summary": {"type": "string"}}}
    ok = {"200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}})}
    paths = {
        "/api/login": {"post": {"summary": "Log in; sets the HttpOnly SameSite=Strict session cookie",
                                "requestBody": _body({"type": "object", "required": ["username", "password"],
                                                      "additionalProperties": False,
                                                      "properties": {"username": {"type": "string"},
                                                                     "password": {"type": "string",
                                                                                  "writeOnly": True}}}),
                                "security": [],
                                "responses": {"400": _json("Error", "the body is not a JSON object"),
                                              "200": _json({"type": "object", "properties": {
                                    "username": {"type": "string"}, "csrf_token": {"type": "string"}}}),
                                    "401": _json("Error", "wrong username or password")}}},
        "/api/logout": {"post": _op("End the session", ok, mutating=True)},
        "/api/session": {"get": _op("The logged-in user and the CSRF token", {"200": _json({"type": "object"})})},
        "/api/gateways": {
            "get": _op("Every running gateway (mail.config, or the file's until it has any)",
                       {"200": _json({"type": "object", "properties": {"gateways": {
                           "type": "array", "items": {"$ref": "#/components/schemas/GatewayView"}}}})}),
            "post": _op("Create a gateway (writes GatewayConfigured); verifies first if verify_before_save",
                        {"201": _json("GatewayView"), "409": _json("Error", CONFLICT), **INVALID},
                        body="GatewayDocument", mutating=True)},
        "/api/gateways/verify": {"post": _op(
            "Verify connection of an outbound gateway document without saving it",
            {"200": _json("VerifyResult"), **INVALID}, body="OutboundGateway", mutating=True)},
        "/api/gateways/{kind}/{name}": {
            "get": _op("One gateway", {"200": _json("GatewayView"), **NOT_FOUND}, params=[KIND, NAME]),
            "put": _op("Replace a gateway (writes GatewayConfigured)",
                       {"200": _json("GatewayView"), "409": _json("Error", CONFLICT), **NOT_FOUND, **INVALID},
                       params=[KIND, NAME], body="GatewayDocument", mutating=True),
            "delete": _op("Remove a gateway (writes GatewayRemoved)", {**ok, **NOT_FOUND}, params=[KIND, NAME],
                          mutating=True)},
        "/api/gateways/{kind}/{name}/status": {"post": _op(
            "Enable or disable a gateway", {"200": _json("GatewayView"), **NOT_FOUND, **INVALID},
            params=[KIND, NAME], body={"type": "object", "required": ["status"], "additionalProperties": False,
                                       "properties": {"status": {"enum": ["enabled", "disabled"]}}}, mutating=True)},
        "/api/messages/{message_id}": {"get": _op(
            "Message trace: every event of one message, in order",
            {"200": _json({"type": "object", "properties": {"message_id": {"type": "string"}, "events": {
                "type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}), **NOT_FOUND}, params=[MID])},
        "/api/events": {"get": _op("Search the audit log", {"200": _json({"type": "object", "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "total": {"type": "integer"}}}), "400": _json("Error", "bad since or limit")}, params=[
            {"name": "since", "in": "query", "schema": TIME_SPEC, "description": TIME_SPEC["description"]},
            {"name": "type", "in": "query", "schema": {"type": "string"}, "description": "event type(s), comma"},
            {"name": "message_id", "in": "query", "schema": {"type": "string"}},
            {"name": "domain", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2000}}])},
        "/api/queue": {"get": _op("What is waiting, per destination and retry tier", {"200": _json({
            "type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}},
                                             "messages": {"type": "integer"}, "recipients": {"type": "integer"}}})})},
        "/api/quarantine": {"get": _op("Messages held in quarantine", {"200": _json({"type": "object"})})},
        "/api/quarantine/{message_id}/release": {"post": _op(
            "Release a quarantined message for delivery (mail held by the virus scan needs confirm_malware=true, "
            "else 409)", {"200": _json({"type": "object"}), "409": _json("Error", "held for malware, not confirmed"),
                          **NOT_FOUND},
            params=[MID, CONFIRM_MALWARE], mutating=True)},
        "/api/quarantine/{message_id}": {"delete": _op(
            "Delete a quarantined message", {"200": _json({"type": "object"}), **NOT_FOUND}, params=[MID],
            mutating=True)},
    }
    from mailgate.ops.admin.queue_api import openapi_paths
    paths.update(openapi_paths(_op, _json, {"type": "object", "required": ["reason"], "additionalProperties": False,
                                             "properties": {"reason": REASON, "until": UNTIL, "timeout_s": TIMEOUT}}))
    paths.update(_tracking_paths())
    from mailgate.ops.admin.mail_auth_api import openapi_paths as mail_auth_paths
    paths.update(mail_auth_paths(_op, _json))
    return {"openapi": "3.1.0",
            "info": {"title": "mailgate admin API", "version": "1",
                     "description": "Gateways, message trace, events, queue and quarantine of a mailgate."},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "mailgate_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}}},
            "security": [{"session": []}]}


UNTIL = {"type": ["integer", "null"], "minimum": 0, "maximum": 253402300799999,
         "description": "suspend: end of the suspension, epoch ms (null: until resumed)"}
TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": 600,
           "description": "longest wait for every egress replica to acknowledge, seconds (default 60)"}


def _tracking_paths() -> dict:
    """The message-tracking routes (mailgate/ops/admin/tracking_api.py); 503 when the store is unavailable."""
    unavailable = {"503": _json("Error", "the tracking store cannot be opened")}
    from mailgate.ops.tracking.queries import STATES
    text = {"type": "string"}
    query = [{"name": n, "in": "query", "required": False, "schema": t, "description": d} for n, t, d in (
        ("sender", text, "envelope sender"), ("recipient", text, "a recipient"),
        ("domain", text, "sender or recipient domain"), ("since", TIME_SPEC, "ISO 8601 or an age like 2h"),
        ("until", TIME_SPEC, "ISO 8601 or an age"), ("state", {"enum": list(STATES)}, "a recipient's state"),
        ("client", text, "client IP address"), ("gateway", text, "inbound or outbound gateway"),
        ("message_id_header", text, "Message-ID header"),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
        ("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}, "skip this many"))]  # tracking_api
    mid = {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/tracking/messages": {"get": _op("Search messages in the tracking store, newest first", {
            "200": _json({"type": "object", "properties": {"messages": {"type": "array"}, "total": {"type": "integer"},
                                                           "limit": {"type": "integer"},
                                                           "offset": {"type": "integer"}}}),
            "400": _json("Error", "bad filter"), **unavailable}, params=query)},
        "/api/tracking/messages/{message_id}": {"get": _op(
            "One message: its row, recipients and a readable timeline", {
                "200": _json({"type": "object"}), **NOT_FOUND, **unavailable}, params=[mid])},
        "/api/tracking/dashboard": {"get": _op(
            "Per-minute counts, queue per destination, spam levels, delivery latency percentiles", {
                "200": _json({"type": "object"}), "400": _json("Error", "minutes out of range"), **unavailable},
            params=[{"name": "minutes", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 5, "maximum": 1440}}])},
    }


if __name__ == "__main__":
    print(json.dumps(spec(), indent=2))
