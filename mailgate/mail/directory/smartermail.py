"""Recipient verification against a SmarterMail server through its web services (REST API, v1).

Reads: `SmarterMailConfig` (url, username, password, timeout_s). Emits: yes/no answers to "does this mailbox exist",
the list of hosted domains, or `DirectoryUnavailable`.

Calls made:
  POST {url}/api/v1/auth/authenticate-user        {"username", "password"} -> {"accessToken", "accessTokenExpiration"?}
  GET  {url}/api/v1/settings/sysadmin/domain-names                          -> {"data": [names]}
  POST {url}/api/v1/settings/domain/get-user      {"email"} + X-SmarterMailDomain -> {"success", "userData" | "message"}

The access token (a JWT, ~15 min) is renewed before it expires (60 s early, or halfway for short-lived tokens) and,
on a 401, by logging in again once. The password is read from the config at login and never put in a message.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime
from typing import Any, Callable

import httpx

from mailgate.core.config import SmarterMailConfig
from mailgate.mail.directory.base import DirectoryLoginFailed, DirectoryUnavailable

LOGIN = "/api/v1/auth/authenticate-user"
DOMAIN_NAMES = "/api/v1/settings/sysadmin/domain-names"
GET_USER = "/api/v1/settings/domain/get-user"

DEFAULT_TOKEN_LIFETIME_S = 15 * 60
"""Assumed token lifetime when the reply gives neither `accessTokenExpiration` nor a JWT `exp` claim."""

NO_SUCH_USER = "user does not exist"
"""SmarterMail's `message` (lower-cased, without the final dot) for an unknown mailbox."""


class SmarterMailDirectory:
    """A `UserDirectory` backed by one SmarterMail server, logged in as a system administrator."""

    def __init__(self, cfg: SmarterMailConfig, client: httpx.AsyncClient | None = None, *,
                 renew_early_s: float = 60, clock: Callable[[], float] = time.monotonic) -> None:
        if not cfg.url:
            raise ValueError("smartermail.url is required for web-service verification")
        if cfg.password is None:
            raise ValueError("smartermail.password is required for web-service verification")
        self._cfg = cfg
        self._base = cfg.url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=cfg.timeout_s)
        self._renew_early_s = renew_early_s
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._login_lock = asyncio.Lock()

    async def __aenter__(self) -> "SmarterMailDirectory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this directory created it."""
        self._token = None
        if self._owns_client:
            await self._client.aclose()

    async def user_exists(self, address: str) -> bool:
        """True if SmarterMail has a user `address`; an address without a domain is not a user."""
        local, _, domain = address.rpartition("@")
        domain = domain.lower().rstrip(".")
        if not local or not domain:
            return False
        reply = await self._call("POST", GET_USER, {"email": f"{local}@{domain}"},
                                 {"X-SmarterMailDomain": domain})
        if reply.get("success") is True and isinstance(reply.get("userData"), dict):
            return True
        if reply.get("success") is False and _message(reply).lower().rstrip(".") == NO_SUCH_USER:
            return False
        raise self._unavailable(GET_USER, f"unexpected reply: {_message(reply) or 'no userData'}")

    async def domain_names(self) -> set[str]:
        """Every domain the SmarterMail server hosts, lower-cased."""
        reply = await self._call("GET", DOMAIN_NAMES)
        data = reply.get("data")
        if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
            raise self._unavailable(DOMAIN_NAMES, "unexpected reply: no list of domain names")
        return {d.lower().rstrip(".") for d in data}

    async def authenticate(self, username: str, password: str) -> bool:
        """True if SmarterMail accepts this user's own login (SMTP AUTH checked against the web service).

        A refusal (HTTP 400/401/403, or `success: false`) is False; no answer raises `DirectoryUnavailable`, whose
        text never holds the password. The token SmarterMail hands out for the user is dropped at once.
        """
        try:
            response = await self._request("POST", LOGIN, json={"username": username, "password": password})
            if response.status_code in (400, 401, 403):
                return False
            reply = self._json(LOGIN, response)
        except DirectoryUnavailable as err:
            raise type(err)(self._scrub(str(err), password)) from None
        token = reply.get("accessToken")
        return reply.get("success") is not False and isinstance(token, str) and bool(token)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send an authorized request; on 401 log in again and retry once. Returns the reply's JSON object."""
        token = await self._valid_token()
        response = await self._send(method, path, body, headers, token)
        if response.status_code == 401:
            token = await self._relogin(token)
            response = await self._send(method, path, body, headers, token)
            if response.status_code == 401:
                raise self._unavailable(path, "HTTP 401 even with a fresh access token")
        return self._json(path, response)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str] | None,
                    token: str) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        return await self._request(method, path, json=body, headers=all_headers)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, self._base + path, timeout=self._cfg.timeout_s, **kwargs)
        except httpx.TimeoutException:
            raise self._unavailable(path, f"no answer within {self._cfg.timeout_s:g} s") from None
        except httpx.HTTPError as err:
            # A transport error's text names the host or socket error, never the request body.
            raise self._unavailable(path, f"{type(err).__name__}: {err}") from None

    def _json(self, path: str, response: httpx.Response) -> dict[str, Any]:
        """The reply's JSON object; a 5xx, a non-JSON body or an error status without a SmarterMail reply fails."""
        if response.status_code >= 500:
            raise self._unavailable(path, f"HTTP {response.status_code}")
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise self._unavailable(path, f"HTTP {response.status_code}, reply is not a JSON object")
        if response.status_code != 200 and "success" not in reply:
            raise self._unavailable(path, f"HTTP {response.status_code}")
        return reply

    async def _valid_token(self) -> str:
        """The current token, or a new one if there is none or it is about to expire."""
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return await self._relogin(self._token)

    async def _relogin(self, stale: str | None) -> str:
        """Log in unless another task already replaced `stale` with a newer token meanwhile."""
        async with self._login_lock:
            if self._token is not None and self._token != stale and self._clock() < self._renew_at:
                return self._token
            self._token = None
            token, lifetime_s = await self._login()
            early_s = min(self._renew_early_s, lifetime_s / 2)
            self._token, self._renew_at = token, self._clock() + lifetime_s - early_s
            return token

    async def _login(self) -> tuple[str, float]:
        """A fresh access token and its remaining lifetime in seconds."""
        assert self._cfg.password is not None
        password = self._cfg.password.reveal()
        try:
            response = await self._request("POST", LOGIN,
                                           json={"username": self._cfg.username, "password": password})
            if response.status_code in (400, 401, 403):
                raise DirectoryLoginFailed(
                    f"SmarterMail {self._base}: login as {self._cfg.username!r} refused (HTTP {response.status_code})")
            reply = self._json(LOGIN, response)
        except DirectoryUnavailable as err:
            raise type(err)(self._scrub(str(err), password)) from None
        token = reply.get("accessToken")
        if reply.get("success") is False or not isinstance(token, str) or not token:
            reason = self._scrub(_message(reply) or "no access token in reply", password)
            raise DirectoryLoginFailed(f"SmarterMail {self._base}: login as {self._cfg.username!r} refused: {reason}")
        return token, _lifetime_s(reply.get("accessTokenExpiration"), token)

    @staticmethod
    def _scrub(text: str, password: str) -> str:
        return text.replace(password, "********") if password else text

    def _unavailable(self, path: str, why: str) -> DirectoryUnavailable:
        return DirectoryUnavailable(f"SmarterMail {self._base}{path}: {why}")

    def __repr__(self) -> str:
        return f"SmarterMailDirectory(url={self._base!r}, username={self._cfg.username!r})"


def _message(reply: dict[str, Any]) -> str:
    message = reply.get("message")
    return message.strip() if isinstance(message, str) else ""


def _lifetime_s(expiration: object, token: str) -> float:
    """Seconds the token stays valid: from `accessTokenExpiration`, else the JWT `exp` claim, else 15 minutes."""
    if isinstance(expiration, str):
        try:
            when = datetime.fromisoformat(expiration)
        except ValueError:
            pass
        else:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return max(0.0, float(claims["exp"]) - time.time())
    except (IndexError, ValueError, KeyError, TypeError):
        return float(DEFAULT_TOKEN_LIFETIME_S)
