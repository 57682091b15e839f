"""aiosmtpd's SMTP protocol with the gateway's session limits: error budget, 421 on idle, raw addresses, coded replies.

Reads: one client connection (through aiosmtpd). Emits: SMTP replies only — every line goes through
`ingress.replies.standard_reply`, so aiosmtpd's own protocol errors carry enhanced status codes too. On top of aiosmtpd:
  * an idle client gets `421 4.4.2` before the connection is closed (aiosmtpd just closes it);
  * after `max_errors` 4xx/5xx replies in one session the client gets `421 4.7.0` and is disconnected;
  * MAIL/RCPT hand the raw address between `<` and `>` to the handler, so the relay policy judges exactly what the
    client sent (aiosmtpd's RFC 5322 parser would drop source routes and refuse some relay forms with a 553 before
    the policy saw them).
What aiosmtpd already does and we rely on: DATA ends only on CRLF.CRLF; command lines over 512 bytes and text lines
over 1000 bytes are answered 500; DATA over `data_size_limit` is drained and answered 552 without being buffered;
plaintext pipelined behind STARTTLS is discarded; AUTH before TLS is refused with 538 5.7.11.
"""
from __future__ import annotations

import logging
from typing import AnyStr

from aiosmtpd.smtp import SMTP

from ingress.replies import Verdict, standard_reply

log = logging.getLogger("mailgate.ingress")


class GatewaySMTP(SMTP):
    def __init__(self, handler: object, *, max_errors: int, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)
        self.max_errors = max_errors
        self.error_count = 0
        self._closing = False

    def _client(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return peer[0] if peer else "?"

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, bytes):  # AUTH challenges; never counted, never rewritten
            await super().push(status)
            return
        line = standard_reply(status)
        # An echoed address may hold undecodable client bytes (surrogate escapes): never let that fail the reply.
        await super().push(line.encode("utf-8", "replace"))
        if line[:1] in "45" and not line.startswith("421") and not self._closing:
            self.error_count += 1
            if self.error_count >= self.max_errors:
                self._closing = True
                log.info("disconnect client=%s reason=too_many_errors errors=%d", self._client(), self.error_count)
                await super().push(Verdict.TOO_MANY_ERRORS.reply(host=self.hostname))
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
