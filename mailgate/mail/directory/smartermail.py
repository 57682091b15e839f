"""Recipient verification against a SmarterMail server through its web services (REST API, v1).

Reads: `SmarterMailConfig` (url, username, password, timeout_s). Emits: yes/no answers to "does this mailbox exist",
the list of hosted domains, `DirectoryUnavailable` (cannot tell now) or `DirectoryAnswerUnrecognised` (the server
answered something we do not understand: logged with its status and body, secrets redacted).

Calls made (what each answer looks like, and where that is documented: docs/admin.md, "SmarterMail web service"):
  POST /api/v1/auth/authenticate-user  {"username", "password"} -> {"accessToken", "refreshToken",
                                                                    "accessTokenExpiration"?, "success"}
  POST /api/v1/auth/refresh-token      {"token": refreshToken}   -> the same shape (the old refresh token is spent)
  GET  /api/v1/settings/sysadmin/domain-names                     -> {"data": [names]}
  POST /api/v1/settings/domain/get-user {"email"} + X-SmarterMailDomain
                                       -> {"success": true, "userData"} | {"success": false, "message": "User does not
                                       exist."}
  GET  /api/v1/settings/domain/alias/{local} + X-SmarterMailDomain -> {"success": true, "alias"} | {"success": false}
  GET  /api/v1/settings/sysadmin/domain-settings/{domain}     -> {"success": true, "domainSettings": {"catchAll"}}

A recipient exists if it is a mailbox (a disabled one too: SmarterMail can keep a disabled mailbox receiving, and
the primary makes the final decision), an alias, or any address of a domain with a catch-all. The access token (a
JWT, ~15 min) is renewed before it expires (60 s early, or halfway for short-lived tokens) with the refresh token,
falling back to a new login; on a 401 the same renewal happens once. The password is read from the config at login
and never put in a message or a log line.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Callable

import httpx

from mailgate.core.config import SmarterMailConfig
from mailgate.mail.directory.base import DirectoryAnswerUnrecognised, DirectoryLoginFailed, DirectoryUnavailable

log = logging.getLogger("mailgate.directory.smartermail")

LOGIN = "/api/v1/auth/authenticate-user"
REFRESH = "/api/v1/auth/refresh-token"
ALIAS = "/api/v1/settings/domain/alias/"
DOMAIN_SETTINGS = "/api/v1/settings/sysadmin/domain-settings/"
DOMAIN_NAMES = "/api/v1/settings/sysadmin/domain-names"
GET_USER = "/api/v1/settings/domain/get-user"

DEFAULT_TOKEN_LIFETIME_S = 15 * 60
"""Assumed token lifetime when the reply gives neither `accessTokenExpiration` nor a JWT `exp` claim."""

NO_SUCH_USER = "user does not exist"
"""SmarterMail's `message` (lower-cased, without the final dot) for an unknown mailbox."""

NOT_FOUND_STATUSES = (200, 400, 404)
"""HTTP statuses with which a `success: false` answer means "no such thing" (SmarterMail mixes them)."""

TWO_FACTOR = "two_factor_required"
"""The start of `message` (lower-cased) when the account needs a second factor: its token cannot call the API."""

MAX_LOGGED_BODY = 2000
_SECRET_FIELDS = re.compile(r'("(?:accessToken|refreshToken|token|password|impersonateAccessToken)"\s*:\s*)"[^"]*"',
                            re.I)


def redact(body: str, *secrets: str) -> str:
    """`body` with token and password fields, and each of `secrets`, replaced by ********; cut to 2000 chars."""
    body = _SECRET_FIELDS.sub(r'\1"********"', body)
    for secret in secrets:
        if secret:
            body = body.replace(secret, "********")
    return body[:MAX_LOGGED_BODY]


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
        self._refresh_token: str | None = None
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
        """True if `address` is a SmarterMail mailbox (enabled or not), an alias, or at a domain with a catch-all;
        an address without a domain is not a user."""
        local, _, domain = address.rpartition("@")
        domain = domain.lower().rstrip(".")
        if not local or not domain:
            return False
        status, reply = await self._call("POST", GET_USER, {"email": f"{local}@{domain}"},
                                         {"X-SmarterMailDomain": domain})
        if reply.get("success") is True and isinstance(reply.get("userData"), dict):
            flags = reply["userData"].get("securityFlags")
            if isinstance(flags, dict) and flags.get("isDisabled") is True:
                log.info("SmarterMail mailbox <%s@%s> is disabled; it exists for verification", local, domain)
            return True
        if not (reply.get("success") is False and status in NOT_FOUND_STATUSES
                and _message(reply).lower().rstrip(".") == NO_SUCH_USER):
            raise self._unrecognised(GET_USER, status, reply)
        return await self._is_alias(local, domain) or await self._has_catch_all(domain)

    async def _is_alias(self, local: str, domain: str) -> bool:
        path = ALIAS + local
        status, reply = await self._call("GET", path, headers={"X-SmarterMailDomain": domain})
        if reply.get("success") is True and isinstance(reply.get("alias"), dict):
            return True
        if reply.get("success") is False and status in NOT_FOUND_STATUSES:
            return False
        raise self._unrecognised(path, status, reply)

    async def _has_catch_all(self, domain: str) -> bool:
        path = DOMAIN_SETTINGS + domain
        status, reply = await self._call("GET", path)
        settings = reply.get("domainSettings")
        if reply.get("success") is True and isinstance(settings, dict):
            catch_all = settings.get("catchAll")
            return isinstance(catch_all, str) and catch_all.strip() != ""
        raise self._unrecognised(path, status, reply)

    async def domain_names(self) -> set[str]:
        """Every domain the SmarterMail server hosts, lower-cased."""
        status, reply = await self._call("GET", DOMAIN_NAMES)
        data = reply.get("data")
        if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
            raise self._unrecognised(DOMAIN_NAMES, status, reply)
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
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """Send an authorized request; on 401 renew the token and retry once. Returns the HTTP status and the
        reply's JSON object."""
        token = await self._valid_token()
        response = await self._send(method, path, body, headers, token)
        if response.status_code == 401:
            token = await self._relogin(token)
            response = await self._send(method, path, body, headers, token)
            if response.status_code == 401:
                raise self._unavailable(path, "HTTP 401 even with a fresh access token")
        return response.status_code, self._json(path, response)

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
        if not isinstance(reply, dict) or (response.status_code != 200 and "success" not in reply):
            raise self._unrecognised(path, response.status_code, response.text)
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
            renewed = await self._refresh() if self._refresh_token else None
            token, lifetime_s = renewed or await self._login()
            early_s = min(self._renew_early_s, lifetime_s / 2)
            self._token, self._renew_at = token, self._clock() + lifetime_s - early_s
            return token

    async def _refresh(self) -> tuple[str, float] | None:
        """A new access token from the refresh token (which is then spent), or None if the server refused it."""
        spent, self._refresh_token = self._refresh_token, None
        response = await self._request("POST", REFRESH, json={"token": spent})
        try:
            reply = response.json() if response.status_code == 200 else None
        except ValueError:
            reply = None
        token = reply.get("accessToken") if isinstance(reply, dict) else None
        if not isinstance(token, str) or not token or reply.get("success") is False:  # type: ignore[union-attr]
            log.info("SmarterMail %s: refresh token refused (HTTP %d); logging in again", self._base,
                     response.status_code)
            return None
        return self._accept_tokens(reply), _lifetime_s(reply.get("accessTokenExpiration"), token)  # type: ignore

    def _accept_tokens(self, reply: dict[str, Any]) -> str:
        refresh = reply.get("refreshToken")
        self._refresh_token = refresh if isinstance(refresh, str) and refresh else None
        return reply["accessToken"]

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
        if _message(reply).lower().startswith(TWO_FACTOR):
            raise DirectoryLoginFailed(f"SmarterMail {self._base}: {self._cfg.username!r} needs two-factor login, "
                                       "whose token cannot call the API; use an account without it")
        if reply.get("success") is False or not isinstance(token, str) or not token:
            reason = self._scrub(_message(reply) or "no access token in reply", password)
            raise DirectoryLoginFailed(f"SmarterMail {self._base}: login as {self._cfg.username!r} refused: {reason}")
        return self._accept_tokens(reply), _lifetime_s(reply.get("accessTokenExpiration"), token)

    @staticmethod
    def _scrub(text: str, password: str) -> str:
        return text.replace(password, "********") if password else text

    def _unrecognised(self, path: str, status: int, reply: object) -> DirectoryAnswerUnrecognised:
        """Log an answer we do not understand, with its status and body (tokens and password redacted)."""
        body = reply if isinstance(reply, str) else json.dumps(reply)
        password = self._cfg.password.reveal() if self._cfg.password is not None else ""
        log.warning("SmarterMail %s%s: unrecognised answer, HTTP %d: %s", self._base, path, status,
                    redact(body, password, self._token or "", self._refresh_token or ""))
        return DirectoryAnswerUnrecognised(f"SmarterMail {self._base}{path}: unrecognised answer (HTTP {status})")

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
