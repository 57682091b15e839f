"""The admin API's SMTP AUTH users and DKIM keys: JSON in, JSON out, secrets write-only.

Reads: the request and, through `mailgate.ops.settings.mail_auth`, the running users and keys in `mail.config`.
Emits: JSON documents (a password or private key never: `{"configured": true}` in its place; a key's document has
the DNS TXT record to publish) and, on a change, one SettingsConfigured with the logged-in administrator as
operator; the response's X-Mailgate-Config-Version is the version every stage reports once it applied the change.
Errors: 404 unknown user/key, 409 already configured, 422 invalid input (`fields` names each bad field).
"""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from mailgate.ops.settings import mail_auth as settings
from mailgate.ops.admin.api import CFG, body, error, operator

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except settings.SettingInvalid as err:
            return error(422, "invalid input", fields=err.fields)
        except settings.SettingNotFound as err:
            return error(404, str(err))
        except settings.SettingExists as err:
            return error(409, str(err))
    return wrapped


async def _body_of(request: web.Request, fields: set[str]) -> dict:
    """The request's JSON object; 422 naming each field it has that is not one of `fields`."""
    data = await body(request)
    unknown = set(data) - fields
    if unknown:
        raise settings.SettingInvalid({k: "unknown field" for k in sorted(unknown)})
    return data


def _versioned(resp: web.Response, version: str) -> web.Response:
    resp.headers["X-Mailgate-Config-Version"] = version
    return resp


@routes.get("/api/auth-users")
@_errors
async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"users": await settings.list_users(request.app[CFG])})


@routes.post("/api/auth-users")
@_errors
async def add_user(request: web.Request) -> web.Response:
    data = await _body_of(request, {"username", "password", "allowed_senders"})
    doc, version = await settings.add_user(request.app[CFG], data.get("username"), data.get("password"),
                                           data.get("allowed_senders"), operator(request))
    return _versioned(web.json_response(doc, status=201), version)


@routes.put("/api/auth-users/{username}")
@_errors
async def update_user(request: web.Request) -> web.Response:
    doc, version = await settings.update_user(request.app[CFG], request.match_info["username"], await body(request),
                                              operator(request))
    return _versioned(web.json_response(doc), version)


@routes.delete("/api/auth-users/{username}")
@_errors
async def remove_user(request: web.Request) -> web.Response:
    version = await settings.remove_user(request.app[CFG], request.match_info["username"], operator(request))
    return _versioned(web.json_response({"ok": True}), version)


@routes.get("/api/dkim-keys")
@_errors
async def list_keys(request: web.Request) -> web.Response:
    return web.json_response({"keys": await settings.list_keys(request.app[CFG])})


@routes.post("/api/dkim-keys")
@_errors
async def generate_key(request: web.Request) -> web.Response:
    data = await _body_of(request, {"domain", "selector", "bits", "algorithm"})
    doc, version = await settings.generate_key(request.app[CFG], data.get("domain"), data.get("selector"),
                                               data.get("bits", 2048), operator(request),
                                               data.get("algorithm", "rsa"))
    return _versioned(web.json_response(doc, status=201), version)


@routes.get("/api/dkim-keys/{domain}/{selector}")
@_errors
async def get_key(request: web.Request) -> web.Response:
    m = request.match_info
    return web.json_response(await settings.get_key(request.app[CFG], m["domain"], m["selector"]))


@routes.delete("/api/dkim-keys/{domain}/{selector}")
@_errors
async def remove_key(request: web.Request) -> web.Response:
    m = request.match_info
    version = await settings.remove_key(request.app[CFG], m["domain"], m["selector"], operator(request))
    return _versioned(web.json_response({"ok": True}), version)


def openapi_paths(op, json_) -> dict:
    """This module's paths for the OpenAPI document (built with openapi.py's helpers); schemas inline and strict."""
    configured = {"type": "object", "required": ["configured"], "additionalProperties": False,
                  "properties": {"configured": {"const": True}}, "readOnly": True,
                  "description": "The secret is set; its value is never returned."}
    username = {"type": "string", "minLength": 1, "maxLength": 254, "pattern": settings.USERNAME.pattern}
    password = {"type": "string", "minLength": 1, "maxLength": settings.MAX_PASSWORD_CHARS, "writeOnly": True,
                "description": "Stored only as its scrypt hash; never returned, logged or written to an event."}
    senders = {"type": "array", "maxItems": settings.MAX_SENDERS, "description": "MAIL FROM this login may use "
               "(user@domain or @domain); empty: any.",
               "items": {"type": "string", "maxLength": 318, "pattern": settings.SENDER.pattern}}
    user = {"type": "object", "required": ["username", "allowed_senders", "password"], "additionalProperties": False,
            "properties": {"username": username, "allowed_senders": senders, "password": configured}}
    new_user = {"type": "object", "required": ["username", "password"], "additionalProperties": False,
                "properties": {"username": username, "password": password, "allowed_senders": senders}}
    change_user = {"type": "object", "additionalProperties": False,
                   "description": "What is left out stays as it is.",
                   "properties": {"password": password, "allowed_senders": senders}}
    domain = {"type": "string", "maxLength": 253, "pattern": settings.DOMAIN.pattern, "format": "hostname"}
    selector = {"type": "string", "minLength": 1, "maxLength": 63, "pattern": settings.SELECTOR.pattern}
    key = {"type": "object", "required": ["domain", "selector", "record_name", "record", "private_key"],
           "additionalProperties": False, "properties": {
               "domain": {"type": "string"}, "selector": {"type": "string"},
               "record_name": {"type": "string", "description": "Where to publish the TXT record."},
               "record": {"type": ["string", "null"],
                          "description": "The TXT record's value (v=DKIM1; k=rsa|ed25519; p=…); "
                                         "null when the private key cannot be read."},
               "private_key": configured, "error": {"type": "string"}}}
    new_key = {"type": "object", "required": ["domain", "selector"], "additionalProperties": False,
               "properties": {"domain": domain, "selector": selector,
                              "bits": {"enum": list(settings.KEY_BITS), "default": 2048,
                                       "description": "RSA key size (ignored for ed25519)"},
                              "algorithm": {"enum": list(settings.ALGORITHMS), "default": "rsa",
                                            "description": "rsa-sha256, or ed25519-sha256 (RFC 8463)"}}}
    ok = json_({"type": "object", "required": ["ok"], "additionalProperties": False,
                "properties": {"ok": {"const": True}}})
    invalid = {"422": json_("Error", "invalid input: `fields` maps each field to its message")}
    exists = {"409": json_("Error", "already configured")}
    missing = {"404": json_("Error", "no such AUTH user / DKIM key")}
    user_param = [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}]
    key_params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in ("domain", "selector")]
    return {
        "/api/auth-users": {
            "get": op("SMTP AUTH users of ingress (passwords never shown)", {"200": json_({
                "type": "object", "required": ["users"], "additionalProperties": False,
                "properties": {"users": {"type": "array", "items": user}}})}),
            "post": op("Add an AUTH user (writes SettingsConfigured auth_users; every ingress takes it live)",
                       {"201": json_(user), **exists, **invalid}, body=new_user, mutating=True)},
        "/api/auth-users/{username}": {
            "put": op("Change an AUTH user's password and/or allowed senders", {"200": json_(user), **missing,
                                                                                **invalid},
                      params=user_param, body=change_user, mutating=True),
            "delete": op("Remove an AUTH user", {"200": ok, **missing}, params=user_param, mutating=True)},
        "/api/dkim-keys": {
            "get": op("DKIM signing keys of egress, each with the DNS TXT record to publish", {"200": json_({
                "type": "object", "required": ["keys"], "additionalProperties": False,
                "properties": {"keys": {"type": "array", "items": key}}})}),
            "post": op("Generate an RSA key for a domain and selector, stored sealed (writes SettingsConfigured "
                       "dkim_keys; every egress signs with it live); the answer has the TXT record to publish",
                       {"201": json_(key), **exists, **invalid}, body=new_key, mutating=True)},
        "/api/dkim-keys/{domain}/{selector}": {
            "get": op("One DKIM key and its DNS TXT record", {"200": json_(key), **missing}, params=key_params),
            "delete": op("Remove a DKIM key (mail from its domain is no longer signed)", {"200": ok, **missing},
                         params=key_params, mutating=True)},
    }
