"""A real HTTP server speaking the three SmarterMail web-service calls mailgate's directory uses, for tests.

Reads: nothing but its requests. Emits: SmarterMail-shaped JSON replies. Runs `ThreadingHTTPServer` on 127.0.0.1
(a free port) in a background thread; use `with SmarterMailAPI(...) as api:` or `start()` / `stop()`.

  POST /api/v1/auth/authenticate-user       -> 200 {accessToken (JWT-shaped), accessTokenExpiration} | 401
  GET  /api/v1/settings/sysadmin/domain-names -> {"data": domains}                       (Bearer token required)
  POST /api/v1/settings/domain/get-user     -> {"userData": ...} | "User does not exist." (Bearer token required)

Knobs: `users`, `domains`, `password`, `token_lifetime_s`, `send_expiration`, `down` (+ `down_mode`: "503" replies
503, "close" drops the connection without a reply), `revoke_tokens()`. `calls` counts requests per endpoint name
("authenticate-user", "domain-names", "get-user") and "unauthorized" for 401s given to stale or bad tokens.
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


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class SmarterMailAPI:
    """The fake SmarterMail server's state; the handler below reads and updates it."""

    def __init__(self, *, users: set[str] | None = None, domains: list[str] | None = None,
                 username: str = "admin", password: str = "s3cret-Pa55", token_lifetime_s: float = 900,
                 send_expiration: bool = True) -> None:
        self.users: set[str] = set(users or ())
        self.domains: list[str] = list(domains or ())
        self.username = username
        self.password = password
        self.token_lifetime_s = token_lifetime_s
        self.send_expiration = send_expiration
        self.down = False
        self.down_mode: Literal["503", "close"] = "503"
        self.calls: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}  # token -> wall-clock expiry
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

    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def issue_token(self) -> dict[str, Any]:
        expires = time.time() + self.token_lifetime_s
        token = ".".join((_b64({"alg": "HS256", "typ": "JWT"}),
                          _b64({"sub": self.username, "exp": expires, "jti": secrets.token_hex(8)}),
                          secrets.token_urlsafe(16)))
        with self._lock:
            self._tokens[token] = expires
        reply: dict[str, Any] = {"success": True, "accessToken": token, "refreshToken": secrets.token_urlsafe(16),
                                 "username": self.username, "isAdmin": True}
        if self.send_expiration:
            when = datetime.fromtimestamp(expires, UTC)
            reply["accessTokenExpiration"] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        return reply

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
                  ("POST", GET_USER): self._get_user}
        route = routes.get((self.command, self.path))
        if route is None:
            self._reply(404, {"success": False, "message": "Not found"})
            return
        api.count(self.path.rsplit("/", 1)[1])
        if route != self._login and not api.token_valid(self.headers.get("Authorization")):
            api.count("unauthorized")
            self._reply(401, {"success": False, "message": "Unauthorized"})
            return
        route(body)

    def _login(self, body: dict[str, Any]) -> None:
        api = self.state
        if body.get("username") != api.username or body.get("password") != api.password:
            self._reply(401, {"success": False, "message": "Invalid username or password"})
            return
        self._reply(200, api.issue_token())

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
            self._reply(200, {"success": False, "message": "User does not exist."})
            return
        self._reply(200, {"success": True, "userData": {"userName": local, "emailAddress": email.lower(),
                                                        "fullName": local.title(), "isDomainAdmin": False}})
