"""Spam scorers: ask one scanner for one message's score.

Reads: the raw message bytes and the SMTP context (client address; for scanners that use it, an `SmtpContext`
with HELO, envelope sender and recipients, authenticated user and queue id). Emits: a float score (the scanner's own
scale,
SpamAssassin-like: ~5 is spam), None when the scorer has no opinion, or `ScannerUnavailable` when the scanner
cannot answer now (the caller decides between retrying later and passing the message unscored).

Scorers: `SpamdScorer` (SpamAssassin's spamd, SPAMC/1.5 over TCP), `RspamdScorer` (rspamd's /checkv2 over HTTP),
`TrustedHeaderScorer` (an X-Spam-Score / X-Spam-Status header written by a trusted upstream). `build_scorers`
makes them from `SpamConfig`.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from mailgate.core.config import SpamConfig, SpamScorer
from mailgate.core.netaddr import AddressSet
from mailgate.mail.headers import header_values

DEFAULT_MAX_SCAN_BYTES = 512 * 1024
MAX_REPLY_BYTES = 1024 * 1024


class ScannerUnavailable(Exception):
    """A scanner did not answer (refused, timed out, or replied with something unparsable); try again later."""

    retriable = True


@runtime_checkable
class Scorer(Protocol):
    """One scanner. `score` returns the unweighted score, or None when this scorer has no opinion."""

    name: str
    weight: float

    async def score(self, message: bytes, client_address: str,
                    context: "SmtpContext | None" = None) -> float | None: ...


@dataclass(frozen=True)
class SmtpContext:
    """What the SMTP session told us about a message, for scanners whose rules use it (rspamd's HELO, SPF and
    authenticated-user rules): the client's IP, its HELO name, the envelope sender ("" for <>, None when not
    known), the envelope recipients, the user it authenticated as (None if it did not) and our id for the message."""

    client_address: str
    helo: str = ""
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    user: str | None = None
    queue_id: str = ""

    @classmethod
    def of(cls, received) -> "SmtpContext":
        """The context of a `MessageReceived` record."""
        return cls(received.client_address, received.client_helo or "", received.mail_from or "",
                   tuple(received.rcpt_to or ()), received.client_auth or None, received.message_id)


def scan_head(message: bytes, max_bytes: int) -> bytes:
    """The first `max_bytes` of `message`, cut back to the last whole line when one fits (scanners see whole lines)."""
    if len(message) <= max_bytes:
        return message
    head = message[:max_bytes]
    cut = head.rfind(b"\n")
    return head[:cut + 1] if cut >= 0 else head


@dataclass(frozen=True)
class SpamdReply:
    """spamd's verdict: `Spam: True ; 15.3 / 5.0` and, for SYMBOLS, the rule names that hit."""

    is_spam: bool
    score: float
    threshold: float
    symbols: tuple[str, ...] = ()


_SPAM_LINE = re.compile(rb"^Spam:\s*(True|False|Yes|No)\s*;\s*(-?[0-9.]+)\s*/\s*(-?[0-9.]+)\s*$", re.I | re.M)
_STATUS_LINE = re.compile(rb"^SPAMD/(\d+\.\d+)\s+(\d+)\s*(.*)$")


def parse_spamd_reply(reply: bytes) -> SpamdReply:
    """Parse a whole SPAMD/1.x reply; ValueError when it is not a successful one."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.match(lines[0].strip())
    if status is None:
        raise ValueError(f"not a spamd reply: {lines[0][:80]!r}")
    if status.group(2) != b"0":
        raise ValueError(f"spamd error {status.group(2).decode()} {status.group(3).decode(errors='replace')}")
    verdict = _SPAM_LINE.search(head)
    if verdict is None:
        raise ValueError("spamd reply has no Spam: header")
    length = re.search(rb"^Content-length:\s*(\d+)\s*$", head, re.I | re.M)
    if length is not None and int(length.group(1)) != len(body):
        raise ValueError(f"spamd reply cut short: {len(body)} of {int(length.group(1))} bytes")
    symbols = tuple(s.strip() for s in body.decode("ascii", "replace").split(",") if s.strip())
    return SpamdReply(verdict.group(1).lower() in (b"true", b"yes"), float(verdict.group(2)),
                      float(verdict.group(3)), symbols)


def spamd_request(body: bytes, user: str | None) -> bytes:
    """The SPAMC/1.5 request head for `body` (without the blank line), with `User` when `user` can be sent."""
    request = b"SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n" % len(body)
    if user and re.fullmatch(r"[\x21-\x7e]{1,256}", user):
        request += b"User: " + user.encode("ascii") + b"\r\n"
    return request


class SpamdScorer:
    """SpamAssassin's spamd over SPAMC/1.5 (`SYMBOLS` command); messages larger than `max_scan_bytes` are
    scanned by their head only."""

    def __init__(self, host: str = "127.0.0.1", port: int = 783, timeout_s: float = 15, name: str = "spamd",
                 weight: float = 1.0, max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES, user: str | None = None):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.name, self.weight = name, weight
        self.max_scan_bytes, self.user = max_scan_bytes, user
        if user is not None and not re.fullmatch(r"[\x21-\x7e]+", user):
            raise ValueError(f"spamd user {user!r} must be printable ASCII without spaces")

    async def score(self, message: bytes, client_address: str, context: SmtpContext | None = None) -> float | None:
        return (await self.check(message, context.user if context is not None else None)).score

    async def check(self, message: bytes, login: str | None = None) -> SpamdReply:
        """Send the message (its head, if large) and parse spamd's verdict; ScannerUnavailable on any failure.
        `login`: the SMTP AUTH user, sent as spamd's User (as Exim's `spam = $authenticated_id`) unless this scorer
        has a fixed user; a login spamd's protocol cannot carry (spaces, non-ASCII) is left out."""
        body = scan_head(message, self.max_scan_bytes)
        request = spamd_request(body, self.user or login)
        request += b"\r\n" + body
        where = f"spamd {self.name} at {self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.timeout_s):
                return parse_spamd_reply(await self._exchange(request))
        except TimeoutError:  # before OSError: TimeoutError is one
            raise ScannerUnavailable(f"{where}: no answer within {self.timeout_s}s") from None
        except (OSError, ValueError) as err:
            raise ScannerUnavailable(f"{where}: {err}") from None

    async def _exchange(self, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            reply = b""
            while chunk := await reader.read(65536):
                reply += chunk
                if len(reply) > MAX_REPLY_BYTES:
                    raise ValueError(f"reply longer than {MAX_REPLY_BYTES} bytes")
            return reply
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass(frozen=True)
class RspamdReply:
    """rspamd's verdict from /checkv2: its score, the action it recommends and the symbols that hit (name: options)."""

    score: float
    action: str
    symbols: dict[str, tuple[str, ...]]


def rspamd_headers(context: SmtpContext) -> list[tuple[bytes, bytes]]:
    """The /checkv2 request headers that carry the SMTP context (rspamd's protocol: IP, Helo, From, one Rcpt per
    recipient, User, Queue-Id); values are UTF-8 with any CR/LF removed, absent values are not sent."""
    pairs: list[tuple[str, str]] = [("IP", context.client_address), ("Helo", context.helo),
                                    ("From", "" if context.mail_from is None else context.mail_from or "<>")]
    pairs += [("Rcpt", r) for r in context.rcpt_to]
    pairs += [("User", context.user or ""), ("Queue-Id", context.queue_id)]
    return [(k.encode(), re.sub(r"[\r\n]", "", v).encode()) for k, v in pairs if v]


def parse_rspamd_reply(reply: object) -> RspamdReply:
    """rspamd's JSON reply as a value; ValueError when it has no finite numeric score."""
    if not isinstance(reply, dict) or "score" not in reply:
        raise ValueError("reply has no score")
    try:
        score = float(reply["score"])
    except (TypeError, ValueError):
        raise ValueError("reply has no numeric score") from None
    if not math.isfinite(score):
        raise ValueError(f"score {score} is not finite")
    symbols = reply.get("symbols")
    if not isinstance(symbols, dict):
        symbols = {}
    hits = {str(name): tuple(str(o) for o in (v.get("options") or ()) if isinstance(v, dict))
            for name, v in symbols.items()}
    return RspamdReply(score, str(reply.get("action", "")), hits)


class RspamdScorer:
    """rspamd's normal worker: POST the message to `{url}/checkv2` with the SMTP context in rspamd's request
    headers; the JSON `score` is the score (for GTUBE rspamd answers action "reject" with the reject threshold as
    the score). Without a shared `client`, each call opens (and closes) its own."""

    def __init__(self, url: str = "http://127.0.0.1:11333", timeout_s: float = 15, name: str = "rspamd",
                 weight: float = 1.0, client: httpx.AsyncClient | None = None,
                 max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES):
        self.url = url.rstrip("/") + "/checkv2"
        self.timeout_s, self.name, self.weight = timeout_s, name, weight
        self.client, self.max_scan_bytes = client, max_scan_bytes

    async def score(self, message: bytes, client_address: str, context: SmtpContext | None = None) -> float | None:
        return (await self.check(message, context or SmtpContext(client_address))).score

    async def check(self, message: bytes, context: SmtpContext) -> RspamdReply:
        """Send the message (its head, if large) with its context; ScannerUnavailable on any failure."""
        headers = rspamd_headers(context)
        body = scan_head(message, self.max_scan_bytes)
        where = f"rspamd {self.name} at {self.url}"
        try:
            if self.client is not None:
                response = await self.client.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
            else:
                async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                    response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise ScannerUnavailable(f"{where}: {type(err).__name__} {err}") from None
        if response.status_code != 200:
            raise ScannerUnavailable(f"{where}: HTTP {response.status_code}")
        try:
            return parse_rspamd_reply(response.json())
        except ValueError as err:  # json's JSONDecodeError is a ValueError
            raise ScannerUnavailable(f"{where}: {err}") from None


_STATUS_SCORE = re.compile(r"\bscore=(-?[0-9]+(?:\.[0-9]+)?)")


class TrustedHeaderScorer:
    """Believes the score an upstream filter wrote (`X-Spam-Score: 7.1`, else `X-Spam-Status: Yes, score=7.1 …`)
    only when the SMTP client is in `trusted`; otherwise, or without such a header, has no opinion. When a header
    occurs more than once the topmost (the last one added, by the nearest hop) is read."""

    def __init__(self, trusted: list[str], name: str = "trusted_header", weight: float = 1.0):
        self.trusted = AddressSet.parse(trusted)
        self.name, self.weight = name, weight

    async def score(self, message: bytes, client_address: str, context: SmtpContext | None = None) -> float | None:
        if client_address not in self.trusted:
            return None
        for value in header_values(message, "X-Spam-Score")[:1]:
            return _finite(value.strip())
        for value in header_values(message, "X-Spam-Status")[:1]:
            found = _STATUS_SCORE.search(value)
            return _finite(found.group(1)) if found else None
        return None


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class DnsListScore:
    """A spam `Scorer` that gives the client's DNS-list score ingress recorded at connect (MessageReceived.
    dnsbl_score; negative for allow lists), times `spam.dnsbl_weight`."""

    name = "dnsbl"

    def __init__(self, value: int, weight: float) -> None:
        self.value = value
        self.weight = weight

    async def score(self, message: bytes, client_address: str, context: object = None) -> float | None:
        return float(self.value)


def build_scorer(spec: SpamScorer, max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
                 http_client: httpx.AsyncClient | None = None) -> Scorer:
    """One configured scorer; its name defaults to its kind."""
    name = spec.name or spec.kind
    if spec.kind == "spamd":
        return SpamdScorer(spec.host, spec.port, spec.timeout_s, name, spec.weight, max_scan_bytes)
    if spec.kind == "rspamd":
        return RspamdScorer(spec.url, spec.timeout_s, name, spec.weight, http_client, max_scan_bytes)
    return TrustedHeaderScorer(spec.trusted_ips, name, spec.weight)


def build_scorers(cfg: SpamConfig, http_client: httpx.AsyncClient | None = None) -> list[Scorer]:
    """Every scorer of `cfg`, in order; `http_client` (owned by the caller) is shared by rspamd scorers."""
    return [build_scorer(spec, cfg.max_scan_bytes, http_client) for spec in cfg.scorers]
