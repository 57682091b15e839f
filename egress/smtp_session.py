"""One SMTP client session to a delivery target, with the target's encryption and AUTH, sending many messages.

Reads: a Target (gateway or primary address) and DeliveryConfig timeouts. Emits: per-recipient Replies for each
message, or a DeliveryError naming the step that failed. Encryption `tls` is STARTTLS *required*: a server that
does not offer it, or a failed handshake, fails the session before any mail command — never a plain-text fallback.
Passwords are revealed only to aiosmtplib's login and scrubbed from every error. aiosmtplib opens the session
(connect, EHLO, STARTTLS, AUTH); a server offering PIPELINING gets each envelope in one write (replies read by
egress/pipelining.py), one offering DSN the sender's DSN request (RFC 3461). DATA waits for the write-ahead record.
"""
from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable
from typing import cast

import aiosmtplib
from aiosmtplib.email import quote_address

from egress.errors import (AuthFailed, ConnectFailed, ConnectionLostAfterData, DeliveryError, ProtocolTimeout,
                           ServerReplied, Step, TlsFailed)
from egress.pipelining import replies_on
from egress.targets import Target
from mailgate.mail.dsn_params import DsnRequest, next_hop_words
from mailgate.mail.line_endings import has_bare_line_ending, to_crlf
from mailgate.mail.smtp_reply import Reply
from mailgate.core.config import DeliveryConfig


_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def data_payload(body: bytes, crlf_only: bool = False) -> list[bytes]:
    """The bytes to write after DATA's 354, in order: the body with CRLF line endings, every line starting with
    "." stuffed with another (RFC 5321 4.5.2), then the final "." line. A body with a bare CR or LF is normalised
    first (`mailgate.mail.line_endings`); with `crlf_only` (the record says its writer checked: `body_crlf_only`)
    that check is skipped, leaving one bulk `replace` and no copy of a body with no line starting with "."."""
    if not crlf_only and has_bare_line_ending(body):
        body = to_crlf(body)
    if body.startswith(b"."):
        body = b"." + body
    body = body.replace(b"\r\n.", b"\r\n..")
    end = b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"
    if len(body) <= 65536:
        return [body + end]  # one write, one segment
    return [body, end]  # no copy of a large body just to append five bytes


def _path(address: str) -> bytes:
    """`<address>` as aiosmtplib's MAIL and RCPT send it (ASCII; ValueError for a control character, as its
    command check raises)."""
    path = quote_address(address).encode("ascii")
    if _CONTROL.search(path):
        raise ValueError("Command arg contains a prohibited control character")
    return path


def _write(transport: asyncio.BaseTransport | None, data: bytes) -> None:
    if transport is None or transport.is_closing():
        raise ConnectionResetError("connection lost")
    transport.write(data)  # type: ignore[attr-defined]


def _tls_context(t: Target) -> ssl.SSLContext:
    """TlsFailed (a DeliveryError) when the gateway's CA file cannot be read, like any other failure to set up TLS."""
    try:
        ctx = ssl.create_default_context(cafile=t.ca_file)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise TlsFailed.handshake(f"{t.label}: CA file {t.ca_file!r} cannot be used: {err}", step="connect") from None
    if not t.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SmtpSession:
    def __init__(self, target: Target, cfg: DeliveryConfig) -> None:
        self.target = target
        self.cfg = cfg
        self.sent = 0
        self._open_transaction = False  # MAIL accepted but no DATA reply yet: RSET before the next MAIL
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self._secrets = (target.auth_password.reveal(),) if target.auth_password else ()
        self._smtp = aiosmtplib.SMTP(
            hostname=target.host, port=target.port, use_tls=target.encryption == "ssl", start_tls=False,
            tls_context=_tls_context(target) if target.encryption != "none" else None,
            local_hostname=cfg.helo_name, timeout=cfg.command_timeout_s)

    async def open(self) -> None:
        """Connect, EHLO, STARTTLS (if `tls`), AUTH (if configured); DeliveryError names the failing step."""
        t, s = self.target, self._smtp
        try:
            await asyncio.wait_for(s.connect(timeout=self.cfg.connect_timeout_s), self.cfg.connect_timeout_s
                                   + self.cfg.greeting_timeout_s)
        except (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise ProtocolTimeout(f"no greeting from {t.label}", step="connect") from None
        except ssl.SSLError as err:
            raise TlsFailed.handshake(f"{t.label}: {err.reason or err}", step="connect") from None
        except aiosmtplib.SMTPConnectError as err:
            if isinstance(err.__cause__, ssl.SSLError) or "SSL" in str(err):
                raise TlsFailed.handshake(f"{t.label}: TLS handshake failed", step="connect") from None
            raise ConnectFailed(f"{t.label}: {err}", step="connect") from None
        except aiosmtplib.SMTPResponseException as err:
            raise ServerReplied(Reply.parse(err.code, err.message), step="greeting") from None
        except OSError as err:
            raise ConnectFailed(f"{t.label}: {err.strerror or err}", step="connect") from None
        except (UnicodeError, ValueError) as err:  # a host name the resolver cannot even encode (e.g. ".")
            raise ConnectFailed(f"{t.label}: cannot resolve: {err}", step="connect") from None
        try:
            await s.ehlo()
            if t.encryption == "tls":
                if not s.supports_extension("starttls"):
                    raise TlsFailed.not_offered()
                try:
                    await s.starttls(tls_context=_tls_context(t))
                except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as err:
                    raise TlsFailed.handshake(f"{t.label}: {err}") from None
                await s.ehlo()
            if t.encryption != "none":
                self._record_tls()
            if t.auth_username and t.auth_password:
                try:
                    await s.login(t.auth_username, t.auth_password.reveal())
                except aiosmtplib.SMTPAuthenticationError as err:
                    raise AuthFailed(f"{t.label} refused AUTH for {t.auth_username}",
                                     reply=Reply.parse(err.code, err.message), secrets=self._secrets) from None
                except aiosmtplib.SMTPException as err:
                    raise AuthFailed(f"{t.label}: {err}", secrets=self._secrets) from None
        except DeliveryError:
            await self.close()
            raise
        except aiosmtplib.SMTPResponseException as err:
            await self.close()
            raise ServerReplied(Reply.parse(err.code, err.message), step="ehlo") from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as err:
            await self.close()
            raise ConnectFailed(f"{t.label}: {type(err).__name__}", step="ehlo") from None

    def _record_tls(self) -> None:
        transport = self._smtp.transport
        obj = transport.get_extra_info("ssl_object") if transport else None
        if obj is not None:
            self.tls_version = obj.version()
            cipher = obj.cipher()
            self.tls_cipher = cipher[0] if cipher else None

    async def send(self, mail_from: str, rcpts: list[str], body: bytes,
                   before_data: Awaitable[object] | None = None, crlf_only: bool = False,
                   dsn: DsnRequest | None = None) -> list[tuple[str, Reply]]:
        """One transaction; per-recipient replies. Raises DeliveryError if the session itself failed. DATA is sent
        only after `before_data` (egress's write-ahead record) completed; what it raises, `send` raises. To a server
        that offers PIPELINING, the envelope goes in one write (`_send_pipelined`); to others, one command a time.
        `crlf_only`: no bare CR or LF in the body (`data_payload`); `dsn`: passed on if the server offers DSN."""
        self.sent += 1
        options = mail_options, rcpt_options = next_hop_words(dsn if self.offers_dsn else None, rcpts)
        if self._smtp.supports_extension("pipelining"):
            return await self._send_pipelined(mail_from, rcpts, body, before_data, crlf_only, options)
        s = self._smtp
        try:
            # After the reply to DATA a transaction is over (RFC 5321 4.1.4): RSET only if one was left open.
            if self._open_transaction:
                await s.rset()
            await s.mail(mail_from, options=mail_options)
            self._open_transaction = True
        except aiosmtplib.SMTPResponseException as err:
            reply = Reply.parse(err.code, err.message)
            return [(r, reply) for r in rcpts]
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as err:
            raise ConnectFailed(f"{self.target.label}: lost at MAIL ({type(err).__name__})", step="mail") from None
        results: dict[str, Reply] = {}
        accepted = []
        for r in rcpts:
            try:
                await s.rcpt(r, options=rcpt_options[r])
                accepted.append(r)
            except aiosmtplib.SMTPRecipientRefused as err:
                results[r] = Reply.parse(err.code, err.message)
            except aiosmtplib.SMTPResponseException as err:
                results[r] = Reply.parse(err.code, err.message)
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as err:
                raise ConnectFailed(f"{self.target.label}: lost at RCPT ({type(err).__name__})",
                                    step="rcpt") from None
        if accepted:
            if before_data is not None:
                await before_data
            try:
                reply = await self._data(body, crlf_only)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError,
                    asyncio.TimeoutError) as err:
                self._smtp.close()
                raise ConnectionLostAfterData(f"{self.target.label}: {type(err).__name__} during DATA",
                                              step="data") from None
            self._open_transaction = False
            for r in accepted:
                results[r] = reply
        return [(r, results[r]) for r in rcpts]

    async def _send_pipelined(self, mail_from: str, rcpts: list[str], body: bytes,
                              before_data: Awaitable[object] | None, crlf_only: bool,
                              options: tuple[list[str], dict[str, list[str]]]) -> list[tuple[str, Reply]]:
        """RSET (if a transaction was left open), MAIL, every RCPT and DATA in one write (RFC 2920: DATA ends the
        group), their replies read in order, then the body once DATA got 354: two round trips instead of 3 + the
        recipients. If `before_data` is not done yet, DATA waits for it in a group of its own (the envelope's
        round trip overlaps it). The replies decide as `send`'s do: a refused MAIL answers for every recipient, a
        refused DATA for the accepted ones, the final reply for the accepted ones."""
        ready = before_data is None or (isinstance(before_data, asyncio.Future) and before_data.done())
        if ready and before_data is not None:
            await before_data  # done: raises now if it failed
        group = ([b"RSET"] if self._open_transaction else []) + [b" ".join([b"MAIL FROM:" + _path(mail_from),
                                                                             *map(str.encode, options[0])])]
        group += [b" ".join([b"RCPT TO:" + _path(r), *map(str.encode, options[1][r])]) for r in rcpts] + (
            [b"DATA"] if ready else [])
        if (transport := self._smtp.transport) is None or transport.is_closing():
            raise ConnectFailed(f"{self.target.label}: lost at MAIL (not connected)", step="mail")
        timeout = self.cfg.command_timeout_s
        step: Step = "mail"
        with replies_on(transport) as replies:
            try:
                _write(transport, b"\r\n".join(group) + b"\r\n")
                if self._open_transaction:
                    await replies.next(timeout)  # whatever RSET got, MAIL's reply says if a transaction began
                    self._open_transaction = False
                mail = await replies.next(timeout)
                self._open_transaction = mail.code == 250
                step = "rcpt"
                answers = [await replies.next(timeout) for _ in rcpts]
                if not ready:
                    if mail.code != 250 or not any(a.code in (250, 251) for a in answers):
                        return [(r, mail if mail.code != 250 else a) for r, a in zip(rcpts, answers)]
                    if before_data is not None:
                        await before_data
                    _write(transport, b"DATA\r\n")
                step = "data"
                start = await replies.next(timeout)
            except (OSError, asyncio.TimeoutError) as err:
                self._smtp.close()
                raise ConnectFailed(f"{self.target.label}: lost at {step.upper()} ({type(err).__name__})",
                                    step=step) from None
            if mail.code != 250:
                answers = [mail] * len(rcpts)
            accepted = [r for r, a in zip(rcpts, answers) if mail.code == 250 and a.code in (250, 251)]
            results = dict(zip(rcpts, answers))
            if start.code != 354:
                return [(r, start if r in accepted else results[r]) for r in rcpts]
            try:
                # DATA accepted with no recipient (a server should refuse it, RFC 2920 3.1): end it empty
                for chunk in data_payload(body, crlf_only) if accepted else [b".\r\n"]:
                    _write(transport, chunk)
                end = await replies.next(self.cfg.data_timeout_s)
            except (OSError, asyncio.TimeoutError) as err:
                self._smtp.close()
                raise ConnectionLostAfterData(f"{self.target.label}: {type(err).__name__} during DATA",
                                              step="data") from None
            self._open_transaction = False
            return [(r, end if r in accepted else results[r]) for r in rcpts]

    async def _data(self, body: bytes, crlf_only: bool) -> Reply:
        """DATA, the body (data_payload), and the server's reply to the final ".". This replaces aiosmtplib's
        `data()`, whose per-line regular expressions (line endings, then dot-stuffing) and three copies of the body
        were most of egress's CPU and memory with large messages; it uses the protocol's public `write` and
        `read_response`, one reply read per command sent, as aiosmtplib's own commands do."""
        s = self._smtp
        start = await s.execute_command(b"DATA", timeout=self.cfg.data_timeout_s)
        if start.code != 354:
            return Reply.parse(start.code, start.message)
        protocol = s.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        for chunk in data_payload(body, crlf_only):
            protocol.write(chunk)
        end = await protocol.read_response(timeout=self.cfg.data_timeout_s)
        return Reply.parse(end.code, end.message)

    @property
    def offers_dsn(self) -> bool:
        """The server's EHLO offered DSN: it was given the sender's DSN request and reports on it itself."""
        return self._smtp.supports_extension("dsn")

    @property
    def usable(self) -> bool:
        return self._smtp.is_connected and self.sent < self.cfg.messages_per_connection

    async def close(self) -> None:
        """QUIT (or drop) the connection and wait until its socket is closed, TLS shutdown included."""
        protocol, transport = self._smtp.protocol, self._smtp.transport
        if self._smtp.is_connected:
            try:
                await asyncio.wait_for(self._smtp.quit(), 5)
            except Exception:
                self._smtp.close()
        if protocol is None or transport is None:
            return
        for _ in range(40):  # a TLS close needs a round trip before connection_lost; do not leak the socket
            if protocol.transport is None:
                return
            await asyncio.sleep(0.05)
        cast(asyncio.Transport, transport).abort()
