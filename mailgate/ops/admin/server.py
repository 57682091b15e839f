"""The admin HTTP server: the aiohttp application (page, static assets, API) and `run` for `mailgate admin`.

Reads: the validated Config (`admin` section for listen address, login and session lifetime). Emits: HTTP responses.
Every /api/ route but login and the OpenAPI document needs a session cookie (401 without); every state-changing
request also needs the session's CSRF token in X-CSRF-Token (403 without). Pages carry a strict
Content-Security-Policy (no inline script), and no response is cacheable.
"""
from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from mailgate.ops.admin import auth, gateways
from mailgate.ops.admin.api import CFG, SESSION, SESSIONS, error, routes
from mailgate.ops.admin.openapi import spec
from mailgate.ops.admin.tracking_api import routes as tracking_routes
from mailgate.core.config import Config
from mailgate.core.config.gateways import WEB_SERVICE_NEEDS_SMARTERMAIL
from mailgate.core.secrets import SecretKeyError

log = logging.getLogger("mailgate.ops.admin")
STATIC = Path(__file__).parent / "static"
PUBLIC = {"/api/login", "/api/openapi.json"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


@web.middleware
async def require_session(request: web.Request, handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC:
        return await handler(request)
    s = request.app[SESSIONS].get(request.cookies.get(auth.COOKIE))
    if s is None:
        return error(401, "not logged in")
    if request.method not in SAFE_METHODS and not auth.csrf_ok(s, request.headers.get(auth.CSRF_HEADER)):
        return error(403, "missing or wrong CSRF token")
    request[SESSION] = s
    return await handler(request)


@web.middleware
async def domain_errors(request: web.Request, handler) -> web.StreamResponse:
    """The gateway module's errors as HTTP statuses with JSON bodies."""
    try:
        return await handler(request)
    except gateways.GatewayInvalid as err:
        if any(WEB_SERVICE_NEEDS_SMARTERMAIL in str(v) for v in err.fields.values()):
            return error(409, "conflicting gateway settings", fields=err.fields)
        return error(422, "invalid gateway", fields=err.fields)
    except gateways.GatewayNotFound as err:
        return error(404, str(err))
    except SecretKeyError as err:  # e.g. a password that looks sealed but this key did not seal it
        return error(422, "invalid gateway", fields={"": f"a secret cannot be used: {err}"})
    except gateways.GatewayExists as err:
        return error(409, str(err), fields={"name": str(err)})
    except gateways.GatewayKindMismatch as err:
        return error(409, "conflicting gateway settings", fields={"kind": str(err)})
    except gateways.VerifyFailed as err:
        return error(422, f"verify connection failed at {err.result.get('step')}: {err.result.get('message')}",
                     verify=err.result)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


def build_app(cfg: Config) -> web.Application:
    app = web.Application(middlewares=[security_headers, require_session, domain_errors], client_max_size=1024 ** 2)
    app[CFG] = cfg
    app[SESSIONS] = auth.Sessions(cfg.admin.session_ttl_s)
    app.router.add_get("/", index)
    app.router.add_get("/api/openapi.json", openapi)
    app.add_routes(routes)
    from mailgate.ops.admin.queue_api import routes as queue_control_routes
    app.add_routes(queue_control_routes)
    app.add_routes(tracking_routes)
    from mailgate.ops.admin.mail_auth_api import routes as mail_auth_routes
    app.add_routes(mail_auth_routes)
    app.router.add_static("/static/", STATIC)
    return app


def run(cfg: Config, host: str | None = None, port: int | None = None) -> None:
    host, port = host or cfg.admin.listen_host, port or cfg.admin.listen_port
    if not cfg.admin.password_hash:
        log.warning("admin.password_hash is empty: nobody can log in (set it with `mailgate admin --hash-password`)")
    log.info("admin listening on http://%s:%d/", host, port)
    web.run_app(build_app(cfg), host=host, port=port, print=None, access_log=log)
