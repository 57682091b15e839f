"""A clamd client: one scan by INSTREAM over TCP or a Unix socket, on the first clamd host that answers.

Reads: the bytes to scan and `AntivirusConfig` (hosts, timeouts, size limit, chunk size). Emits: a `ClamdVerdict`
(clean, infected with the signature names, or unscannable with the reason) naming the host that gave it, or raises
`ScannerUnavailable` when no host answered (each host's error in its text).

The protocol (clamd(8), "INSTREAM"): the client sends `zINSTREAM\\0`, then the data in chunks, each preceded by its
length as 4 bytes in network order, then a zero length; clamd answers one NUL-terminated line per result and closes
the connection: `stream: OK`, `stream: <signature> FOUND`, or `<text> ERROR` (`INSTREAM size limit exceeded. ERROR`
once more than its StreamMaxLength was sent). ClamAV's limit and encryption heuristics (`Heuristics.Limits.Exceeded.*`
with AlertExceedsMax, `Heuristics.Encrypted.*` with AlertEncrypted) mean that clamd could not look inside: they are
`unscannable`, not a virus and never clean. Data larger than `max_scan_bytes` is not sent at all: unscannable.

Failover: hosts are tried in the configured order, except that one that failed within `host_retry_after_s` is tried
after the others (`HostHealth`, one per process). Every failure — no connection, the timeout, an ERROR reply, a reply
that is not clamd's — moves on to the next host.
"""
from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from mailgate.core.config import AntivirusConfig, ClamdScanner

Status = Literal["clean", "infected", "unscannable"]

COMMAND = b"zINSTREAM\0"
END = b"\0\0\0\0"
SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded"
LIMIT_HEURISTICS = "Heuristics.Limits.Exceeded"
ENCRYPTED_HEURISTICS = "Heuristics.Encrypted"
MAX_REPLY_BYTES = 64 * 1024
"""A reply longer than this is not clamd's."""
UNSENT = "(not sent)"
"""The scanner name of a verdict reached without asking clamd (over max_scan_bytes)."""


class ClamdError(Exception):
    """One clamd host did not give a verdict (connection, timeout, an ERROR reply, garbage): try the next."""


class ScannerUnavailable(Exception):
    """No clamd host gave a verdict; the text names each host and its error."""


@dataclass(frozen=True)
class ClamdReply:
    """What clamd's reply says, parsed."""

    status: Status
    signatures: tuple[str, ...] = ()
    """Signature names (infected; for unscannable, the heuristic that said so, if any)."""
    reason: str = ""
    """Why unscannable, in words."""


@dataclass(frozen=True)
class ClamdVerdict:
    """One scan's outcome: the parsed reply, the host that gave it, how long it took, the hosts that failed first."""

    reply: ClamdReply
    scanner: str
    duration_s: float
    failed: tuple[str, ...] = ()
    """`host: error` for each host tried before this one."""


def parse_reply(raw: bytes) -> ClamdReply:
    """clamd's answer to INSTREAM → a ClamdReply; ClamdError for an ERROR reply (other than the size limit, which is
    unscannable) or one that is not clamd's."""
    lines = [ln.strip() for ln in raw.replace(b"\n", b"\0").split(b"\0") if ln.strip()]
    if not lines:
        raise ClamdError("clamd closed the connection without a verdict")
    found: list[str] = []
    heuristics: list[str] = []
    clean = False
    for line in (ln.decode("utf-8", "replace") for ln in lines):
        if line.startswith(SIZE_LIMIT_REPLY):
            return ClamdReply("unscannable", reason="larger than clamd's StreamMaxLength")
        if line.endswith(" ERROR"):
            raise ClamdError(f"clamd: {line}")
        text = line.removeprefix("stream:").strip() if line.startswith("stream:") else None
        if text is None:
            raise ClamdError(f"not a clamd reply: {line[:80]!r}")
        if text == "OK":
            clean = True
        elif text.endswith(" FOUND"):
            name = text[:-len(" FOUND")].strip()
            (heuristics if name.startswith((LIMIT_HEURISTICS, ENCRYPTED_HEURISTICS)) else found).append(name)
        else:
            raise ClamdError(f"not a clamd reply: {line[:80]!r}")
    if found:
        return ClamdReply("infected", tuple(found))
    if heuristics:
        why = ("encrypted content" if heuristics[0].startswith(ENCRYPTED_HEURISTICS)
               else "beyond clamd's scan limits")
        return ClamdReply("unscannable", tuple(heuristics), f"{why} ({heuristics[0]})")
    assert clean
    return ClamdReply("clean")


def instream_frames(data: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """The INSTREAM request for `data`: the command, length-prefixed chunks, the zero length."""
    yield COMMAND
    view = memoryview(data)
    for i in range(0, len(data), chunk_bytes):
        chunk = view[i:i + chunk_bytes]
        yield struct.pack("!I", len(chunk)) + chunk.tobytes()
    yield END


async def _open(scanner: ClamdScanner, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        if scanner.socket is not None:
            return await asyncio.wait_for(asyncio.open_unix_connection(str(scanner.socket)), timeout_s)
        return await asyncio.wait_for(asyncio.open_connection(scanner.host, scanner.port), timeout_s)
    except asyncio.TimeoutError:
        raise ClamdError(f"no connection within {timeout_s:g}s") from None
    except OSError as err:
        raise ClamdError(f"cannot connect: {err.strerror or err}") from None


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    """clamd's reply: up to its terminator (NUL for the z-commands), end of stream, or MAX_REPLY_BYTES."""
    reply = await reader.read(MAX_REPLY_BYTES)
    while reply and not reply.endswith((b"\0", b"\n")) and len(reply) < MAX_REPLY_BYTES:
        more = await reader.read(MAX_REPLY_BYTES - len(reply))
        if not more:
            break
        reply += more
    return reply


async def instream(scanner: ClamdScanner, data: bytes, *, timeout_s: float, connect_timeout_s: float,
                   chunk_bytes: int) -> bytes:
    """Send `data` to one clamd by INSTREAM and return its raw reply; ClamdError on any failure or after
    `timeout_s` for the whole exchange."""
    async def exchange() -> bytes:
        reader, writer = await _open(scanner, connect_timeout_s)
        # The reply is read while the stream is sent: clamd answers `INSTREAM size limit exceeded` as soon as its
        # StreamMaxLength is reached and closes, and once a later write fails asyncio raises that error from every
        # read, reply or not. Read at once, the reply is in hand before the broken pipe.
        answer = asyncio.ensure_future(_read_reply(reader))
        try:
            try:
                for frame in instream_frames(data, chunk_bytes):
                    if answer.done():
                        break  # clamd answered before the end of the stream: it stopped reading
                    writer.write(frame)
                    await writer.drain()
                    await asyncio.sleep(0)  # let a reply that arrived be read before the next write
            except (ConnectionResetError, BrokenPipeError):
                pass  # clamd stopped reading (past its StreamMaxLength) and said so: the reply is being read
            return await answer
        except OSError as err:
            raise ClamdError(f"connection failed: {err.strerror or err}") from None
        finally:
            if not answer.done():
                answer.cancel()
            elif not answer.cancelled():
                answer.exception()  # retrieved (raised above if it mattered), so asyncio does not log it again
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
    try:
        return await asyncio.wait_for(exchange(), timeout_s)
    except asyncio.TimeoutError:
        raise ClamdError(f"no verdict within {timeout_s:g}s") from None


@dataclass
class HostHealth:
    """When each host last failed, so that a host that is down costs the next scans nothing."""

    clock: Callable[[], float] = time.monotonic
    failed_at: dict[str, float] = field(default_factory=dict)

    def order(self, scanners: list[ClamdScanner], retry_after_s: float) -> list[ClamdScanner]:
        """Hosts that did not fail within `retry_after_s` in configured order, then the others, longest-failed
        first."""
        now = self.clock()
        fresh = [s for s in scanners if now - self.failed_at.get(s.name, -1e18) >= retry_after_s]
        stale = sorted((s for s in scanners if s not in fresh), key=lambda s: self.failed_at[s.name])
        return fresh + stale

    def failed(self, name: str) -> None:
        self.failed_at[name] = self.clock()

    def answered(self, name: str) -> None:
        self.failed_at.pop(name, None)


HEALTH = HostHealth()
"""The process's one record of failed hosts (shared by every configuration version's client)."""

ScanHook = Callable[[str, str, float], None]
"""Called after each try with (host, outcome, seconds): outcome is the verdict's status or "error"."""


class ClamdClient:
    def __init__(self, cfg: AntivirusConfig, health: HostHealth | None = None,
                 on_try: ScanHook | None = None) -> None:
        self.cfg = cfg
        self.health = health or HEALTH
        self.on_try = on_try

    async def scan(self, data: bytes) -> ClamdVerdict:
        """Scan `data` on the first host that answers; ScannerUnavailable when none did."""
        if len(data) > self.cfg.max_scan_bytes:
            reason = f"{len(data)} bytes, larger than max_scan_bytes {self.cfg.max_scan_bytes}"
            return ClamdVerdict(ClamdReply("unscannable", reason=reason), UNSENT, 0.0)
        failed: list[str] = []
        for scanner in self.health.order(list(self.cfg.scanners), self.cfg.host_retry_after_s):
            began = time.monotonic()
            try:
                raw = await instream(scanner, data, timeout_s=self.cfg.timeout_s,
                                     connect_timeout_s=self.cfg.connect_timeout_s, chunk_bytes=self.cfg.chunk_bytes)
                reply = parse_reply(raw)
            except ClamdError as err:
                self._tried(scanner.name, "error", time.monotonic() - began)
                self.health.failed(scanner.name)
                failed.append(f"{scanner.name}: {err}")
                continue
            took = time.monotonic() - began
            self._tried(scanner.name, reply.status, took)
            self.health.answered(scanner.name)
            return ClamdVerdict(reply, scanner.name, took, tuple(failed))
        raise ScannerUnavailable("; ".join(failed))

    def _tried(self, host: str, outcome: str, seconds: float) -> None:
        if self.on_try is not None:
            self.on_try(host, outcome, seconds)
