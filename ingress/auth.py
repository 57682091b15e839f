"""SMTP AUTH on ingress: PLAIN and LOGIN over TLS, checked against password hashes or SmarterMail, rate-limited.

Reads: `ingress.auth` (users with scrypt hashes, an optional SmarterMail gateway, failure limits) and the AUTH
exchange of one session (aiosmtpd calls `handle_AUTH` after it checked EHLO, TLS and the mechanism name).
Emits: `235 2.7.0` and the login on the session (`session.auth_data`), `535 5.7.8` after a pause that grows with
the failures counted for the client's address, `421 4.7.0` (and a closed connection) once that address reached
`max_failures` within `window_s`, or `454 4.7.0` when the directory cannot answer. Logs the login name and the
outcome, never the password. Logins checked by SmarterMail are cached (successes only) for its `cache_ttl_s`,
keyed by a hash of login and password, so the clear password is not kept either.
Live: `reconfigure` takes the users and limits of a new configuration (from mail.config, e.g. a user the admin page
added); sessions that start from then on are judged by them. The SmarterMail gateway is read at start only.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiosmtpd.smtp import MISSING, SMTP, Session
from cachetools import TTLCache

from ingress.replies import Verdict
from mailgate.core.config import Config, LoginLimits
from mailgate.core.passwords import check_password
from mailgate.mail.directory.base import DirectoryUnavailable
from mailgate.mail.directory.smartermail import SmarterMailDirectory

log = logging.getLogger("mailgate.ingress")
MECHANISMS = ("PLAIN", "LOGIN")


class LoginThrottle:
    """Failed logins per client address in a sliding window: how long to pause, and when to refuse outright."""

    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.get(client, deque())
        horizon = self._clock() - self.limits.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            self._failures.pop(client, None)
        return times

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.limits.max_failures

    def failed(self, client: str) -> float:
        """Count one failure; the pause (seconds) to take before answering 535."""
        times = self._recent(client)
        times.append(self._clock())
        self._failures[client] = times
        return min(self.limits.delay_s * len(times), self.limits.max_delay_s)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class Credentials:
    """Checks a login: configured users (scrypt hashes) first, then the SmarterMail web service if configured."""

    def __init__(self, cfg: Config) -> None:
        auth = cfg.ingress.auth
        self.users = {u.username: u for u in auth.users}
        self.directory: SmarterMailDirectory | None = None
        self._cache: TTLCache[str, bool] | None = None
        if auth.smartermail_gateway is not None:
            gw = next(g for g in cfg.inbound_gateways if g.name == auth.smartermail_gateway)
            self.directory = SmarterMailDirectory(gw.smartermail)
            self._cache = TTLCache(maxsize=10_000, ttl=gw.smartermail.cache_ttl_s)

    @property
    def enabled(self) -> bool:
        """Is there any way to log in (a configured user, or the SmarterMail web service)?"""
        return bool(self.users) or self.directory is not None

    def reconfigure(self, cfg: Config) -> None:
        self.users = {u.username: u for u in cfg.ingress.auth.users}

    async def check(self, username: str, password: bytes) -> bool:
        """True when the login is good; raises DirectoryUnavailable when SmarterMail cannot answer."""
        user = self.users.get(username)
        if user is not None:
            return await asyncio.to_thread(check_password, password, user.password_hash)
        if self.directory is None or self._cache is None:
            return False
        key = hashlib.sha256(username.encode() + b"\0" + password).hexdigest()
        if self._cache.get(key):
            return True
        ok = await self.directory.authenticate(username, password.decode("utf-8", "replace"))
        if ok:
            self._cache[key] = True
        return ok

    def sender_allowed(self, username: str, sender: str) -> bool:
        """May this login use `sender` as MAIL FROM? Unrestricted unless the user lists allowed senders."""
        user = self.users.get(username)
        if user is None or not user.allowed_senders:
            return True
        sender = sender.lower()
        domain = "@" + sender.rpartition("@")[2]
        return any(a.lower() in (sender, domain) for a in user.allowed_senders)

    async def aclose(self) -> None:
        if self.directory is not None:
            await self.directory.aclose()


@dataclass
class _Login:
    username: str
    password: bytes


class SmtpAuth:
    """The `handle_AUTH` hook of one ingress process: reads the credentials, checks, throttles, replies."""

    def __init__(self, cfg: Config, credentials: Credentials | None = None,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.credentials = credentials or Credentials(cfg)
        self.throttle = LoginThrottle(cfg.ingress.auth.limits)
        self.hostname = cfg.ingress.hostname
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        """Offer AUTH to sessions that start now? (Only when some login can succeed.)"""
        return self.credentials.enabled

    def reconfigure(self, cfg: Config) -> None:
        """Users and failure limits of a new configuration; failures counted so far stay counted."""
        self.credentials.reconfigure(cfg)
        self.throttle.limits = cfg.ingress.auth.limits

    async def handle(self, server: SMTP, session: Session, args: list[str]) -> object:
        if not getattr(server, "mg_auth", False):
            return MISSING  # a listener without AUTH: aiosmtpd's default answer (535)
        client = session.peer[0] if session.peer else "?"
        if self.throttle.blocked(client):
            await self._refuse(server, client)
            return None
        login = await _read_login(server, args)
        if login is None:
            return None  # aiosmtpd's challenge already answered (aborted, bad base64)
        try:
            ok = await self.credentials.check(login.username, login.password)
        except DirectoryUnavailable as err:
            log.warning("auth unavailable user=%r client=%s: %s", login.username, client, err)
            return Verdict.AUTH_UNAVAILABLE.reply()
        if ok:
            self.throttle.succeeded(client)
            session.authenticated = True
            session.auth_data = session.login_data = login.username  # type: ignore[assignment]  # aiosmtpd: Any
            log.info("auth ok user=%r client=%s mechanism=%s", login.username, client, args[0].upper())
            return Verdict.AUTH_OK.reply()
        pause = self.throttle.failed(client)
        log.info("auth failed user=%r client=%s mechanism=%s pause=%.1fs", login.username, client,
                 args[0].upper(), pause)
        await self._sleep(pause)
        return Verdict.AUTH_FAILED.reply()

    async def _refuse(self, server: SMTP, client: str) -> None:
        log.info("disconnect client=%s reason=too_many_auth_failures", client)
        await server.push(Verdict.AUTH_TOO_MANY_FAILURES.reply(host=self.hostname))
        if server.transport is not None:
            server.transport.close()
        return None

    async def aclose(self) -> None:
        await self.credentials.aclose()


async def _read_login(server: SMTP, args: list[str]) -> _Login | None:
    """The login and password of AUTH PLAIN (RFC 4616) or AUTH LOGIN, with challenges as needed."""
    mechanism = args[0].upper()
    initial = args[1] if len(args) > 1 else None
    if mechanism == "PLAIN":
        blob = await _answer(server, initial, b"")
        if blob is None:
            return None
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return None
        return _Login(parts[1].decode("utf-8", "replace"), parts[2])
    user = await _answer(server, initial, b"Username:")
    if user is None:
        return None
    password = await _answer(server, None, b"Password:")
    return None if password is None else _Login(user.decode("utf-8", "replace"), password)


async def _answer(server: SMTP, initial: str | None, challenge: bytes) -> bytes | None:
    if initial is None:
        got = await server.challenge_auth(challenge)
        return None if got is MISSING else got
    if initial == "=":
        return b""
    try:
        return base64.b64decode(initial, validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Can't decode base64")
        return None
