"""ingress.bdat on a real socket (GatewaySMTP as ingress builds it): chunks, `BDAT 0 LAST`, pipelined chunks, the
size limit, chunks of a refused BDAT never running as commands, a size that cannot be read, DATA after BDAT."""
from __future__ import annotations

import asyncio

import pytest

from ingress.replies import ehlo_lines
from ingress.smtp_server import GatewaySMTP

LIMIT_BYTES = 2000


class Handler:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, bool | None]] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's name
        session.host_name = hostname
        return ehlo_lines(responses)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.bodies.append((envelope.original_content, envelope.mg_bare_line_ending))
        return "250 2.0.0 Ok: queued as X"


@pytest.fixture
async def smtp():
    handler = Handler()
    template = GatewaySMTP(handler, max_errors=100, data_size_limit=LIMIT_BYTES, hostname="gw.test",
                           ident="mailgate", timeout=60, enable_SMTPUTF8=True, decode_data=False)
    server = await asyncio.get_running_loop().create_server(template.spawn, host="127.0.0.1", port=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])

    async def replies(n: int = 1) -> list[str]:
        out = []
        for _ in range(n):
            lines = [(await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\r\n")]
            while lines[-1][3:4] == "-":
                lines.append((await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\r\n"))
            out.append(lines[-1] if len(lines) == 1 else "\n".join(lines))
        return out

    async def send(data: bytes, n: int = 1) -> list[str]:
        writer.write(data)
        return await replies(n)

    await replies()
    assert "250-CHUNKING" in (await send(b"EHLO client.test\r\n"))[0]
    yield send, handler, reader
    writer.close()
    server.close()
    await server.wait_closed()


async def test_chunks_make_one_message_byte_for_byte(smtp):
    send, handler, _ = smtp
    assert await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n", 2) == ["250 2.0.0 Ok", "250 2.0.0 Ok"]
    first, second = b"Subject: x\r\n\r\n.line one\r\n", b"\r\n.\r\nMAIL FROM:<evil@x.test>\r\n"
    assert await send(b"BDAT %d\r\n" % len(first) + first) == [f"250 2.0.0 Ok: {len(first)} octets received"]
    assert await send(b"BDAT %d LAST\r\n" % len(second) + second) == ["250 2.0.0 Ok: queued as X"]
    assert handler.bodies == [(first + second, False)]  # no dot-stuffing, no end marker: the octets as sent


async def test_pipelined_envelope_and_chunks_with_bdat_0_last(smtp):
    send, handler, _ = smtp
    got = await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 5\r\nhelloBDAT 2\r\n\r\nBDAT 0 LAST\r\n"
                     b"NOOP\r\n", 6)
    assert got == ["250 2.0.0 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok: 5 octets received",
                   "250 2.0.0 Ok: 2 octets received", "250 2.0.0 Ok: queued as X", "250 2.0.0 Ok"]
    assert handler.bodies == [(b"hello\r\n", False)]


async def test_past_the_size_limit_every_chunk_is_552_and_the_next_transaction_works(smtp):
    send, handler, _ = smtp
    await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n", 2)
    assert await send(b"BDAT 1500\r\n" + b"x" * 1500) == ["250 2.0.0 Ok: 1500 octets received"]
    assert await send(b"BDAT 600\r\n" + b"y" * 600) == ["552 5.3.4 Error: message size exceeds fixed limit"]
    assert await send(b"BDAT 10 LAST\r\n" + b"z" * 10) == ["552 5.3.4 Error: message size exceeds fixed limit"]
    assert handler.bodies == []
    assert await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 4 LAST\r\nok\r\n", 3) == [
        "250 2.0.0 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok: queued as X"]


async def test_a_refused_bdat_still_reads_its_chunk_so_its_octets_never_run_as_commands(smtp):
    send, handler, _ = smtp
    smuggled = b"MAIL FROM:<x@y.test>\r\n"
    assert await send(b"BDAT %d LAST\r\n" % len(smuggled) + smuggled) == ["503 5.5.1 Error: need MAIL command"]
    await send(b"MAIL FROM:<a@b.test>\r\n")
    assert await send(b"BDAT %d\r\n" % len(smuggled) + smuggled) == ["503 5.5.1 Error: need RCPT command"]
    assert await send(b"NOOP\r\n") == ["250 2.0.0 Ok"] and handler.bodies == []


async def test_bare_lf_is_found_and_long_lines_refused_as_with_data(smtp):
    send, handler, _ = smtp
    await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n", 2)
    assert await send(b"BDAT 8 LAST\r\nbare\nlf\n") == ["250 2.0.0 Ok: queued as X"]
    assert handler.bodies == [(b"bare\nlf\n", True)]  # the hook refuses or repairs it (ingress.bare_lf)
    await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n", 2)
    long = b"x" * 1000 + b"\r\n"  # as DATA: 1000 characters and CRLF are too long
    assert (await send(b"BDAT %d LAST\r\n" % len(long) + long))[0].startswith("500 5.5.2 ")


async def test_data_after_bdat_is_refused_and_an_unreadable_size_ends_the_session(smtp):
    send, handler, reader = smtp
    await send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 2\r\nhi", 3)
    assert await send(b"DATA\r\n") == ["503 5.5.1 Error: DATA not allowed in a BDAT transaction"]
    assert await send(b"BDAT x1 LAST\r\nQUIT\r\n") == ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"]
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed: nothing after it is read as a command
