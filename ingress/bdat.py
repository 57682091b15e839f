"""BDAT (RFC 3030 CHUNKING) on ingress: a message sent in chunks of a stated size instead of DATA's dot-terminated text.

Reads: one `BDAT <size> [LAST]` command and exactly `size` octets after it from the session's stream (aiosmtpd has
no BDAT; `GatewaySMTP.smtp_BDAT` calls `bdat`). Emits: one reply per chunk — `250` for a chunk kept, and after
`LAST` the reply of the same DATA hook (`IngressHandler.handle_DATA`: bare-LF rule, size limit, publish before
`250`) — or the refusal from `ingress.replies`. The rules DATA has hold: the chunks together may not pass
`data_size_limit` (the chunk past it and every later one of the transaction are drained, not kept, and answered `552
5.3.4`, counted once in the error budget), a text line over the line limit is answered 500 at `LAST`, and a bare CR
or LF is found for the hook to refuse or repair. A chunk is always read whole, even when the command is refused (no
MAIL, no RCPT, no EHLO), so its octets never run as commands; a size that cannot be read gets 501 and the connection
is closed, as nothing says where the chunk ends. BDAT and DATA do not mix in one transaction (DATA after BDAT: 503).
Chunks may be pipelined: each reply is written once its chunk is read.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING

from ingress.replies import Verdict
from mailgate.mail.line_endings import bare_in_lines

if TYPE_CHECKING:
    from ingress.smtp_server import GatewaySMTP

log = logging.getLogger("mailgate.ingress")

_ARG = re.compile(r"^(\d{1,18})(?: +(LAST))? *$", re.IGNORECASE)
_PIECE = 64 * 1024


async def _read(server: GatewaySMTP, size: int, keep: bool) -> bytes | None:
    """`size` octets of the stream (only counted, not kept, unless `keep`); None when the client went away."""
    reader = server._reader
    got = bytearray()
    left = size
    server._in_data = True  # the idle timer counts chunk activity, as it counts DATA's
    try:
        while left:
            piece = await reader.readexactly(min(left, _PIECE))
            left -= len(piece)
            if keep:
                got += piece
    except asyncio.IncompleteReadError:
        log.info("connection lost during BDAT client=%s", server._client())
        return None
    finally:
        server._in_data = False
    return bytes(got)


def _refusal(server: GatewaySMTP) -> str | None:
    """Why this session cannot send a chunk now (aiosmtpd's wording, given codes by `standard_reply`)."""
    session, envelope = server.session, server.transaction
    if session is None or not session.extended_smtp:
        return "503 Error: send EHLO first"
    if getattr(server, "_auth_required", False) and not session.authenticated:
        return "530 5.7.0 Authentication required"
    if not envelope.mail_from:
        return "503 Error: need MAIL command"
    if not envelope.rcpt_tos:
        return "503 Error: need RCPT command"
    return None


async def bdat(server: GatewaySMTP, arg: str) -> None:
    match = _ARG.match(arg or "")
    if match is None:
        log.warning("disconnect client=%s reason=bdat_syntax", server._client())
        server._closing = True
        await server.push(Verdict.BDAT_SYNTAX.reply())
        if server.transport is not None:
            server.transport.close()
        return
    size, last = int(match.group(1)), match.group(2) is not None
    refusal = _refusal(server)
    envelope = server.transaction
    limit = server.data_size_limit or 64 * 1024 * 1024
    if refusal is None and envelope.mg_bdat is None:
        envelope.mg_bdat = bytearray()  # this transaction is a BDAT one from now on (no DATA)
    kept = envelope.mg_bdat if refusal is None else None
    fits = kept is not None and not envelope.mg_bdat_too_big and len(kept) + size <= limit
    chunk = await _read(server, size, keep=fits)
    if chunk is None:
        return
    if refusal is not None:
        await server.push(refusal)
        return
    if not fits:  # this chunk and every later one of the transaction: 552, drained (memory stays bounded)
        again = envelope.mg_bdat_too_big
        envelope.mg_bdat_too_big = True
        envelope.mg_bdat = bytearray()
        reply = Verdict.MESSAGE_TOO_BIG.reply()
        # The same refusal repeated for a pipelined stream counts once in the session's error budget (as bytes).
        if again:
            await server.push(reply.encode())
        else:
            await server.push(reply)
        if last:
            server._set_post_data_state()
        return
    assert envelope.mg_bdat is not None
    envelope.mg_bdat += chunk
    if not last:
        await server.push(Verdict.BDAT_CHUNK.reply(size=str(size)))
        return
    await _last(server)


async def _last(server: GatewaySMTP) -> None:
    """The message is whole: DATA's checks and DATA's hook (which publishes before it answers 250)."""
    envelope = server.transaction
    content = bytes(envelope.mg_bdat or b"")
    lines = content.split(b"\r\n")
    if content and max(map(len, lines)) + 2 > server.line_length_limit:
        await server.push("500 Line too long (see RFC5321 4.5.3.1.6)")
        server._set_post_data_state()
        return
    envelope.content = envelope.original_content = content
    envelope.mg_bare_line_ending = bare_in_lines(lines)
    status = await server._call_handler_hook("DATA")
    await server.push("250 OK" if status is MISSING else status)
    server._set_post_data_state()
