"""aiosmtpd's SMTP protocol with the gateway's session limits: error budget, 421 on idle, raw addresses, coded replies.

Reads: one client connection (through aiosmtpd). Emits: SMTP replies only — every line goes through
`ingress.replies.standard_reply`, so aiosmtpd's own protocol errors carry enhanced status codes too. On top of aiosmtpd:
  * an idle client gets `421 4.4.2` before the connection is closed (aiosmtpd just closes it);
  * after `max_errors` 4xx/5xx replies in one session the client gets `421 4.7.0` and is disconnected;
  * per-client limits (ingress.limits: connections per client IP, messages per client per time unit) and
    per-session ones (messages per connection, session time): over one, `421 4.7.0`, a `disconnect ... reason=`
    log line, `mailgate_ingress_limit_exceeded{limit}`, and the connection is closed;
  * the idle timer counts DATA activity: bytes of a message arriving reset it, so a slow but moving DATA is not
    cut off (aiosmtpd resets it only per command line);
  * MAIL/RCPT hand the raw address between `<` and `>` to the handler, so the relay policy judges exactly what the
    client sent (aiosmtpd's RFC 5322 parser would drop source routes and refuse some relay forms with a 553 before
    the policy saw them).
  * MAIL and RCPT take the DSN parameters (RFC 3461: ingress.esmtp_params), and after EHLO their lines may be
    longer by what the offered extensions add (one table per session: aiosmtpd's is shared by all of them);
  * BDAT (RFC 3030 CHUNKING, which aiosmtpd lacks) is ingress.bdat's, with DATA's limits and hook;
  * DATA is read in large chunks (`ingress.data_reader`), not line by line, with aiosmtpd's exact rules: it ends only
    on CRLF.CRLF, a text line over 1000 bytes is answered 500, over `data_size_limit` is drained and answered 552.
What aiosmtpd already does and we rely on: command lines over 512 bytes are answered 500; plaintext pipelined
behind STARTTLS is discarded; AUTH before TLS is refused with 538 5.7.11 (and not offered in EHLO before TLS). AUTH
itself is ingress.auth's.
"""
from __future__ import annotations

import asyncio
import logging
import warnings
from typing import AnyStr, cast

from aiosmtpd.smtp import MISSING, SMTP, _AuthMechAttr, syntax

from ingress import esmtp_params
from ingress.bdat import bdat
from ingress.data_reader import DataState, read_data
from ingress.dnsbl import NOT_LISTED, DnsblScore
from ingress.door import Door
from ingress.envelope import GatewayEnvelope
from ingress.limits import ClientLimits
from ingress.pregreet import Pregreet
from ingress.replies import Verdict, standard_reply
from mailgate.core import metrics

log = logging.getLogger("mailgate.ingress")


class GatewaySMTP(SMTP):
    def __init__(self, handler: object, *, max_errors: int, limits: ClientLimits | None = None,
                 max_messages_per_connection: int = 0, max_session_s: float = 0, auth: bool = False,
                 implicit_tls: bool = False, door: Door | None = None, listener: str = "main",
                 pregreet: str = "off", dnsbl: bool = True, bare_lf_trusted: str = "normalize",
                 **kwargs: object) -> None:
        # AUTH only on an encrypted session: after STARTTLS, or on a listener that is TLS from the first byte
        # (aiosmtpd cannot see that one, so its TLS check is lifted there).
        with warnings.catch_warnings():  # aiosmtpd warns of AUTH without TLS: this session is all TLS
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            super().__init__(handler, auth_require_tls=not implicit_tls, **kwargs)  # type: ignore[arg-type]
        self.mg_auth = auth
        self.implicit_tls = implicit_tls
        self.max_errors = max_errors
        self.limits = limits
        self.max_messages = max_messages_per_connection
        self.max_session_s = max_session_s
        self.door = door
        self.listener = listener
        self.pregreet_action = pregreet
        self.dnsbl_enabled = dnsbl
        self.bare_lf_trusted = bare_lf_trusted
        self._new_session_state()

    def _create_envelope(self) -> GatewayEnvelope:
        return GatewayEnvelope()

    @property
    def transaction(self) -> GatewayEnvelope:
        """The current transaction's envelope (aiosmtpd's `envelope`, typed as the one `_create_envelope` made)."""
        return cast(GatewayEnvelope, self.envelope)

    def _new_session_state(self) -> None:
        """What one connection changes as it goes (aiosmtpd's own is set up by its __init__)."""
        self.error_count = 0
        self._closing = False
        self.messages = 0
        self._reply_lines: list[bytes] = []  # the lines so far of a multi-line reply (see push)
        self._counted: str | None = None  # the client IP this session holds a connection slot of
        self._refused = False
        self._in_data = False
        self._session_timer: asyncio.TimerHandle | None = None
        self.mg_mail_dsn: object = None  # the DSN parameters of the MAIL / RCPT being answered (_dsn_params)
        self.mg_rcpt_dsn: object = None
        self._exempt = False  # a relay-network client: no pre-greet test, no DNS lists
        self._talked: asyncio.Event | None = None  # set by the first bytes while the pre-greet test waits
        self._dnsbl: asyncio.Task[DnsblScore] | None = None
        self._enforced: tuple[str, str, str] | None = None  # (check, reason, reply) for every RCPT (pre-greet)

    def spawn(self) -> GatewaySMTP:
        """A new session with this one's settings, for the next connection, without aiosmtpd's __init__: that
        builds its command, hook and AUTH tables with `inspect.getmembers` for every connection (its cost:
        docs/performance.md, "SMTP sessions spawned from a template"). `self` is a template that is never
        connected: the new session copies its settings, gets its own stream state (as
        `asyncio.StreamReaderProtocol.__init__` makes it) and the same tables with the methods bound to itself."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        asyncio.StreamReaderProtocol.__init__(
            new, asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=new._cb_client_connected, loop=self.loop)
        new._smtp_methods = {name: getattr(new, "smtp_" + name) for name in self._smtp_methods}
        new._auth_methods = {mech: _AuthMechAttr(a.method.__func__.__get__(new)  # type: ignore[attr-defined]
                                                 if a.is_builtin else a.method,
                                                 a.is_builtin) for mech, a in self._auth_methods.items()}
        new._handle_hooks = dict(self._handle_hooks)
        new._new_session_state()
        return new

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # a second call is the STARTTLS upgrade of the same session
        super().connection_made(transport)
        if self.implicit_tls and self.session is not None and self.session.ssl is None:
            self.session.ssl = {"cipher": transport.get_extra_info("cipher")}
        if not first:
            return
        client = self._client()
        if self.limits is not None:
            if self.limits.connect(client):
                self._counted = client
            else:
                self._refused = True
        if self.door is not None and not self._refused:
            self._exempt = self.door.exempt(client)
            if self.dnsbl_enabled and not self._exempt:
                self._dnsbl = self.door.start_lookup(client)
        if self.max_session_s:
            self._session_timer = self.loop.call_later(self.max_session_s, self._session_expired)

    def connection_lost(self, error: Exception | None) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        if self._counted is not None and self.limits is not None:
            self.limits.disconnect(self._counted)
            self._counted = None
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._talked is not None:
            self._talked.set()
        if self._in_data:
            self._reset_timeout()  # the idle timer counts DATA activity

    async def _handle_client(self) -> None:
        if self._refused:
            self._over_limit("connection_count", Verdict.TOO_MANY_CONNECTIONS)
            return
        if self.door is not None and not await self._at_the_door(self.door):
            return
        await super()._handle_client()

    async def _at_the_door(self, door: Door) -> bool:
        """The pre-greet test (postscreen's) and, with `ingress.dnsbl.action: connect`, the DNS lists: False when
        the connection was refused and closed. A DNS-list lookup for the RCPT action goes on in the background."""
        client, action = self._client(), self.pregreet_action
        if action != "off" and self._exempt:
            door.count("pregreet", "exempt")
        elif action != "off" and not door.pregreet.needed(action, client):
            door.count("pregreet", "cached")
        elif action != "off":
            self._talked = asyncio.Event()
            if self._reader._buffer:  # type: ignore[attr-defined]  # it spoke before the first line went out
                self._talked.set()
            self._writer.write(Pregreet.teaser(self.hostname))
            early = await door.pregreet.spoke_early(self._talked)
            self._talked = None
            if not early:
                door.pregreet.remember_pass(client)
                door.count("pregreet", "pass")
            else:
                sent = bytes(self._reader._buffer[:100])  # type: ignore[attr-defined]
                log.info("pregreet client=%s listener=%s action=%s sent=%r", client, self.listener, action, sent)
                if action == "drop":
                    self._refuse_connection("pregreet", "pregreet", Verdict.PREGREET_DROP.reply())
                    return False
                if action == "enforce":
                    self._enforced = ("pregreet", "pregreet", Verdict.PREGREET_ENFORCE.reply())
                door.count("pregreet", "enforced" if action == "enforce" else "ignored")
        if self._dnsbl is not None and door.dnsbl_action == "connect":
            score = await self.dnsbl_score()
            if score.over(door.threshold):
                reply = Verdict.DNSBL_CONNECT.reply(client=client, zone=score.blocked_by)
                self._refuse_connection("dnsbl", f"dnsbl:{score.blocked_by}", reply, score)
                return False
        return True

    async def dnsbl_score(self) -> DnsblScore:
        """The client's DNS-list score (awaits the lookup started at connect, bounded by its deadline)."""
        if self._dnsbl is None:
            return NOT_LISTED
        try:
            return await asyncio.shield(self._dnsbl)
        except Exception:  # the lookup never raises; a bug there must not refuse or fail the session
            log.exception("dnsbl lookup failed client=%s", self._client())
            return NOT_LISTED

    async def door_refusal(self, authenticated: bool, dnsbl: bool = True) -> tuple[str, str, str, int] | None:
        """At RCPT: (check, reason, reply, dnsbl score) when a door check refuses every recipient of this session
        (pre-greet enforce, or the DNS lists over the threshold with action rcpt, unless logged in or `dnsbl` is
        False: an allow entry of the gateway matched); else None."""
        if self._enforced is not None:
            return (*self._enforced, 0)
        door = self.door
        if door is None or self._dnsbl is None or door.dnsbl_action != "rcpt" or authenticated or not dnsbl:
            return None
        score = await self.dnsbl_score()
        if not score.over(door.threshold):
            return None
        reply = Verdict.DNSBL_RCPT.reply(client=self._client(), zone=score.blocked_by)
        return "dnsbl", f"dnsbl:{score.blocked_by}", reply, score.score

    def _refuse_connection(self, check: str, reason: str, reply: str, score: DnsblScore = NOT_LISTED) -> None:
        """Answer `reply`, close the connection, and have the door log, count and audit it (ConnectionRefused)."""
        self._closing = True
        self._audit(check, reason, reply, score)
        if self.transport is not None and not self.transport.is_closing():
            self._writer.write(reply.encode() + b"\r\n")
            self.transport.close()

    def _audit(self, check: str, reason: str, reply: str, score: DnsblScore = NOT_LISTED) -> None:
        if self.door is not None:
            self.door.refused(client=self._client(), listener=self.listener, check=check, reason=reason,
                              reply=reply, score=score)

    def _over_limit(self, limit: str, verdict: Verdict) -> None:
        """Answer 421 4.7.0 for `limit`, log it, count it, audit it, close the connection."""
        client = self._client()
        log.warning("disconnect client=%s reason=limit_exceeded limit=%s", client, limit)
        metrics.INGRESS_LIMITED.labels(limit).inc()
        self._refuse_connection("limit", f"limit:{limit}", verdict.reply(host=self.hostname, client=client))

    def _session_expired(self) -> None:
        self._session_timer = None
        self._over_limit("session_time", Verdict.SESSION_TIME)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        await super().smtp_EHLO(hostname)
        if self.session is not None and self.session.extended_smtp:
            self.command_size_limits = esmtp_params.command_size_limits(bool(self.data_size_limit),
                                                                        self.enable_SMTPUTF8)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        if self.session is not None and self.session.host_name and not self.transaction.mail_from and arg:
            self.messages += 1
            if self.max_messages and self.messages > self.max_messages:
                self._over_limit("messages_per_connection", Verdict.MESSAGES_PER_CONNECTION)
                return
            if self.limits is not None and not self.limits.message(self._client()):
                self._over_limit("message_rate", Verdict.MESSAGE_RATE)
                return
        taken, arg = await self._dsn_params("MAIL", arg)
        if taken:
            await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str) -> None:
        taken, arg = await self._dsn_params("RCPT", arg)
        if taken:
            await super().smtp_RCPT(arg)

    async def _dsn_params(self, command: str, arg: str) -> tuple[bool, str]:
        """RFC 3461's parameters out of an EHLO session's MAIL or RCPT (ingress.esmtp_params), kept for the
        handler's hook as `mg_mail_dsn` / `mg_rcpt_dsn`; False once a bad one was answered 501."""
        if self.session is None or not self.session.extended_smtp:
            return True, arg
        rest, request, refusal = esmtp_params.take(command, arg)
        if refusal is not None:
            await self.push(refusal)
            return False, arg
        if command == "MAIL":
            self.mg_mail_dsn = request
        else:
            self.mg_rcpt_dsn = request
        return True, cast(str, rest)

    def _client(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return peer[0] if peer else "?"

    async def push(self, status: AnyStr) -> None:
        """One reply line. The lines of a multi-line reply (EHLO's) are kept until its last line and then written
        together: one write, one segment, instead of one per line."""
        if isinstance(status, bytes):  # AUTH challenges, BDAT's repeated 552: never counted, never rewritten
            await super().push(status)
            return
        if not self.mg_auth and status.startswith("250-AUTH"):
            return  # a listener without AUTH does not offer it
        line = standard_reply(status)
        # An echoed address may hold undecodable client bytes (surrogate escapes): never let that fail the reply.
        data = line.encode("utf-8", "replace")
        if line[3:4] == "-":
            self._reply_lines.append(data)
            return
        if self._reply_lines:
            data = b"\r\n".join([*self._reply_lines, data])
            self._reply_lines.clear()
        await super().push(data)
        if line[:1] in "45" and not line.startswith("421") and not self._closing:
            self.error_count += 1
            if self.error_count >= self.max_errors:
                self._closing = True
                log.info("disconnect client=%s reason=too_many_errors errors=%d", self._client(), self.error_count)
                self._audit("errors", "too_many_errors", Verdict.TOO_MANY_ERRORS.reply(host=self.hostname))
                await super().push(Verdict.TOO_MANY_ERRORS.reply(host=self.hostname))
                if self.transport is not None:
                    self.transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.transaction.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if self.transaction.mg_bdat is not None:
            await self.push(Verdict.DATA_AFTER_BDAT.reply())
            return
        if self._reader._buffer:  # type: ignore[attr-defined]  # bytes the client sent after DATA, unasked
            await self._pipelining_violation()
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._in_data = True
        try:
            data = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA client=%s", self._client())
            self._writer.close()
            raise
        finally:
            self._in_data = False
        if data.state is DataState.LOST:
            return
        if data.state is not DataState.OK:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)" if data.state is DataState.TOO_LONG
                            else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        envelope = self.transaction
        envelope.content = envelope.original_content = data.content
        envelope.mg_bare_line_ending = data.bare_line_ending
        status = await self._call_handler_hook("DATA")
        await self.push("250 OK" if status is MISSING else status)
        self._set_post_data_state()

    @syntax("BDAT chunk-size [LAST]")
    async def smtp_BDAT(self, arg: str) -> None:
        """RFC 3030 CHUNKING: ingress.bdat."""
        await bdat(self, arg)

    async def _pipelining_violation(self) -> None:
        """The client sent message text (or anything) after DATA without waiting for 354: RFC 2920 makes DATA the
        last command of a group, so this is a client that does not wait for replies (Postfix: "improper command
        pipelining after DATA"). Refused with 554 5.5.0 and disconnected; nothing of it is accepted."""
        client = self._client()
        log.warning("disconnect client=%s reason=pipelining_violation (text sent before the 354 reply)", client)
        metrics.INGRESS_LIMITED.labels("pipelining").inc()
        self._closing = True
        self._audit("pipelining", "pipelining_violation", Verdict.PIPELINING_VIOLATION.reply())
        await self.push(Verdict.PIPELINING_VIOLATION.reply())
        if self.transport is not None:
            self.transport.close()

    def _timeout_cb(self) -> None:
        log.info("disconnect client=%s reason=idle_timeout", self._client())
        if self.transport is not None and not self.transport.is_closing():
            self._closing = True
            self._writer.write(Verdict.IDLE_TIMEOUT.reply(host=self.hostname).encode() + b"\r\n")
        super()._timeout_cb()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """`<raw> params` → (raw, params): the address exactly as sent, for the policy to accept or refuse."""
        text = arg.strip()
        if not text.startswith("<"):
            address, _, rest = text.partition(" ")
            return address, rest
        end = text.find(">")
        if end < 0:
            return None, None
        address, rest = text[1:end] or "<>", text[end + 1:]  # aiosmtpd's parser gives "<>" for the null path
        if rest and not rest.startswith(" "):
            return None, None
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest
