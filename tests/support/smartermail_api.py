"""A real HTTP server speaking the SmarterMail web-service calls mailgate's directory uses, for tests.

It answers as SmarterMail's API is described in public sources (/work/shared/reference/smartermail-api-notes.md,
summarised with its sources in docs/admin.md), not as mailgate's client expects: every reply carries the
`success` / `resultCode` / `message` envelope, and the knobs below produce the answers whose exact form is not
documented (the HTTP status of an unknown user, a wording the client does not know).

Reads: nothing but its requests. Emits: SmarterMail-shaped JSON replies. Runs `ThreadingHTTPServer` on 127.0.0.1
(a free port) in a background thread; use `with SmarterMailAPI(...) as api:` or `start()` / `stop()`.

  POST /api/v1/auth/authenticate-user {username, password}
       -> 200 {success, resultCode 200, accessToken (JWT), refreshToken, accessTokenExpiration, username, isAdmin,
          isDomainAdmin} | 401 {success false, message "USERNAME_OR_PASSWORD_INCORRECT"}
          | 200 {success true?, message "TWO_FACTOR_REQUIRED…", accessToken that cannot call the API} (`two_factor`)
  POST /api/v1/auth/refresh-token {token: refreshToken} -> 200 new access + refresh token (the old refresh token
       stops working) | 401 {success false}
  GET  /api/v1/settings/sysadmin/domain-names -> {"data": domains, success true}        (Bearer token required)
  POST /api/v1/settings/domain/get-user {email} + X-SmarterMailDomain
       -> 200 {success true, userData {userName, emailAddress, securityFlags {isDisabled}}}
        | `unknown_user_status` {success false, message `unknown_user_message`}          (Bearer token required)
  GET  /api/v1/settings/domain/alias/{name} + X-SmarterMailDomain
       -> 200 {success true, alias {name, aliasTargetList}} | 400 {success false, message "ALIAS_NOT_FOUND"}
  GET  /api/v1/settings/sysadmin/domain-settings/{domain} -> 200 {success true, domainSettings {catchAll}}

Knobs: `users`, `disabled`, `aliases` ({address: [targets]}), `catch_all` ({domain: target}), `domains`,
`password`, `token_lifetime_s`, `send_expiration`, `two_factor`, `unknown_user_status` / `unknown_user_message`,
`down` (+ `down_mode`: "503" replies 503, "close" drops the connection without a reply), `revoke_tokens()`.
`calls` counts requests per endpoint name ("authenticate-user", "refresh-token", "domain-names", "get-user",
"alias", "domain-settings") and "unauthorized" for 401s given to stale or bad tokens.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

LOGIN = "/api/v1/auth/authenticate-user"
DOMAIN_NAMES = "/api/v1/settings/sysadmin/domain-names"
GET_USER = "/api/v1/settings/domain/get-user"
REFRESH = "/api/v1/auth/refresh-token"
ALIAS = "/api/v1/settings/domain/alias/"
DOMAIN_SETTINGS = "/api/v1/settings/sysadmin/domain-settings/"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class SmarterMailAPI:
    """The fake SmarterMail server's state; the handler below reads and updates it."""

    def __init__(self, *, users: set[str] | None = None, domains: list[str] | None = None,
                 username: str = "admin", password: str = "s3cret-Pa55", token_lifetime_s: float = 900,
                 send_expiration: bool = True, disabled: set[str] | None = None,
                 aliases: dict[str, list[str]] | None = None, catch_all: dict[str, str] | None = None) -> None:
        self.users: set[str] = set(users or ())
        self.disabled: set[str] = {d.lower() for d in disabled or ()}
        self.aliases: dict[str, list[str]] = {a.lower(): t for a, t in (aliases or {}).items()}
        self.catch_all: dict[str, str] = {d.lower(): t for d, t in (catch_all or {}).items()}
        self.two_factor = False
        self.unknown_user_status = 200
        self.unknown_user_message = "User does not exist."
        self.domains: list[str] = list(domains or ())
        self.username = username
        self.password = password
        self.token_lifetime_s = token_lifetime_s
        self.send_expiration = send_expiration
        self.down = False
        self.down_mode: Literal["503", "close"] = "503"
        self.calls: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}  # token -> wall-clock expiry
        self._refresh_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SmarterMailAPI":
        api = self

        class Handler(_Handler):
            state = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="smartermail-api",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)

    def __enter__(self) -> "SmarterMailAPI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def revoke_tokens(self) -> None:
        """Forget every issued token, as a server restart would: the next call with an old token gets 401."""
        with self._lock:
            self._tokens.clear()
            self._refresh_tokens.clear()

    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def issue_token(self) -> dict[str, Any]:
        expires = time.time() + self.token_lifetime_s
        token = ".".join((_b64({"alg": "HS256", "typ": "JWT"}),
                          _b64({"sub": self.username, "exp": expires, "jti": secrets.token_hex(8)}),
                          secrets.token_urlsafe(16)))
        refresh = secrets.token_urlsafe(16)
        with self._lock:
            if not self.two_factor:
                self._tokens[token] = expires
            self._refresh_tokens.add(refresh)
        reply: dict[str, Any] = {"success": True, "resultCode": 200, "accessToken": token, "refreshToken": refresh,
                                 "username": self.username, "isAdmin": True, "isDomainAdmin": False}
        if self.two_factor:
            reply["message"] = "TWO_FACTOR_REQUIRED"
        if self.send_expiration:
            when = datetime.fromtimestamp(expires, UTC)
            reply["accessTokenExpiration"] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        return reply

    def use_refresh_token(self, token: object) -> bool:
        """True (and the token is spent: rotation) if `token` is a live refresh token."""
        with self._lock:
            if token in self._refresh_tokens:
                self._refresh_tokens.discard(token)  # type: ignore[arg-type]
                return True
            return False

    def token_valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            expires = self._tokens.get(authorization.removeprefix("Bearer "))
        return expires is not None and time.time() < expires


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # concurrent clients must not wait for SYN retransmits


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    state: SmarterMailAPI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _dispatch(self) -> None:
        api = self.state
        body = self._body()
        if api.down:
            if api.down_mode == "close":
                self.close_connection = True
                return
            self._reply(503, {"success": False, "message": "Service Unavailable"})
            return
        routes = {("POST", LOGIN): self._login, ("GET", DOMAIN_NAMES): self._domain_names,
                  ("POST", GET_USER): self._get_user, ("POST", REFRESH): self._refresh}
        route, name = routes.get((self.command, self.path)), self.path.rsplit("/", 1)[1]
        for prefix, handler in ((ALIAS, self._alias), (DOMAIN_SETTINGS, self._domain_settings)):
            if self.command == "GET" and self.path.startswith(prefix):
                route, name = handler, prefix.rstrip("/").rsplit("/", 1)[1]
        if route is None:
            self._reply(404, {"success": False, "message": "Not found"})
            return
        api.count(name)
        if route not in (self._login, self._refresh) and not api.token_valid(self.headers.get("Authorization")):
            api.count("unauthorized")
            self._reply(401, {"success": False, "message": "Unauthorized"})
            return
        route(body)

    def _login(self, body: dict[str, Any]) -> None:
        api = self.state
        if body.get("username") != api.username or body.get("password") != api.password:
            self._reply(401, {"success": False, "resultCode": 401, "message": "USERNAME_OR_PASSWORD_INCORRECT"})
            return
        self._reply(200, api.issue_token())

    def _refresh(self, body: dict[str, Any]) -> None:
        api = self.state
        if not api.use_refresh_token(body.get("token")):
            self._reply(401, {"success": False, "resultCode": 401, "message": "INVALID_REFRESH_TOKEN"})
            return
        self._reply(200, api.issue_token())

    def _alias(self, body: dict[str, Any]) -> None:
        api = self.state
        name = self.path[len(ALIAS):].lower()
        domain = (self.headers.get("X-SmarterMailDomain") or "").lower()
        targets = api.aliases.get(f"{name}@{domain}")
        if targets is None:
            self._reply(400, {"success": False, "resultCode": 400, "message": "ALIAS_NOT_FOUND"})
            return
        self._reply(200, {"success": True, "resultCode": 200, "alias": {"name": name, "aliasTargetList": targets}})

    def _domain_settings(self, body: dict[str, Any]) -> None:
        api = self.state
        domain = self.path[len(DOMAIN_SETTINGS):].lower()
        if domain not in {d.lower() for d in api.domains}:
            self._reply(400, {"success": False, "resultCode": 400, "message": "Domain not found."})
            return
        self._reply(200, {"success": True, "resultCode": 200,
                          "domainSettings": {"name": domain, "catchAll": api.catch_all.get(domain, "")}})

    def _domain_names(self, body: dict[str, Any]) -> None:
        self._reply(200, {"success": True, "data": list(self.state.domains)})

    def _get_user(self, body: dict[str, Any]) -> None:
        api = self.state
        email = str(body.get("email", ""))
        local, _, domain = email.rpartition("@")
        if (self.headers.get("X-SmarterMailDomain") or "").lower() != domain.lower():
            self._reply(400, {"success": False, "message": "X-SmarterMailDomain does not match the address"})
            return
        if domain.lower() not in {d.lower() for d in api.domains}:
            self._reply(400, {"success": False, "message": "Domain not found."})
            return
        if email.lower() not in {u.lower() for u in api.users}:
            self._reply(api.unknown_user_status, {"success": False, "resultCode": api.unknown_user_status,
                                                  "message": api.unknown_user_message})
            return
        flags = {"isDisabled": email.lower() in api.disabled, "isDomainAdmin": False}
        self._reply(200, {"success": True, "resultCode": 200, "message": "",
                          "userData": {"userName": local, "emailAddress": email.lower(), "fullName": local.title(),
                                       "securityFlags": flags}})
