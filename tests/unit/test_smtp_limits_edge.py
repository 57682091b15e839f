"""Ingress's SMTP limits at the edge, over a real socket (GatewaySMTP as ingress/runner.py builds it).

What RFC 5321 says and what we do (docs/reliability.md, "Limits at the edge"):
- Command line (4.5.3.1.4): at most 512 octets *including* CRLF, and servers should avoid limits where they can
  (4.5.3.1). aiosmtpd compares the line *without* CRLF to 512, so 512 characters + CRLF (514 octets) pass and 513
  characters are refused with 500 5.5.2: 2 octets more lenient than the RFC's floor, never stricter. After EHLO,
  MAIL may be longer by the extensions we announce (SIZE +26, SMTPUTF8 +10): 548 characters.
- Text line (4.5.3.1.6): at most 1000 octets including CRLF, not counting a leading dot added for transparency.
  We measure on the wire, before removing that dot, with aiosmtpd's limit of 1001 octets: a 998-character line
  that starts with a dot (999 on the wire + CRLF) passes, as the RFC requires; so does a 999-character line without
  one (lenient by one); 1000 characters are refused with 500 5.5.2 after the final dot.
"""
from __future__ import annotations

import asyncio

import pytest

from ingress.smtp_server import GatewaySMTP

LIMIT_BYTES = 1 << 20


class Handler:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.bodies.append(envelope.content)
        return "250 2.0.0 Ok: queued"


@pytest.fixture
async def smtp():
    handler = Handler()
    loop = asyncio.get_running_loop()
    template = GatewaySMTP(handler, max_errors=100, data_size_limit=LIMIT_BYTES, hostname="gw.test",
                           ident="mailgate", timeout=60, enable_SMTPUTF8=True, decode_data=False)
    server = await loop.create_server(template.spawn, host="127.0.0.1", port=0)  # as ingress/runner.py does
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    client = Client(reader, writer)
    assert (await client.reply()).startswith("220 ")
    yield client, handler
    writer.close()
    server.close()
    await server.wait_closed()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 30)).decode().rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return lines[-1] if lines[-1][:3] != lines[0][:3] or len(lines) == 1 else "\n".join(lines)

    async def cmd(self, line: bytes | str) -> str:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()
        return await self.reply()


def command_of(length: int) -> str:
    """A NOOP command line of exactly `length` characters (CRLF not counted)."""
    return "NOOP " + "x" * (length - 5)


@pytest.mark.parametrize("length, accepted", [(510, True), (511, True), (512, True), (513, False), (514, False)])
async def test_command_line_limit_is_512_characters_before_crlf(smtp, length, accepted):
    client, _ = smtp
    assert (await client.cmd("HELO client.test")).startswith("250")
    reply = await client.cmd(command_of(length))
    assert reply == ("250 2.0.0 Ok" if accepted else "500 5.5.2 Error: command line too long"), (length, reply)
    assert await client.cmd("NOOP") == "250 2.0.0 Ok"  # the session goes on either way


@pytest.mark.parametrize("length, accepted", [(658, True), (659, False)])
async def test_mail_after_ehlo_may_be_longer_by_the_announced_extensions(smtp, length, accepted):
    client, _ = smtp
    assert "SIZE" in await client.cmd("EHLO client.test")
    prefix = "MAIL FROM:<a@sender.test> BODY=8BITMIME SIZE="
    line = prefix + "1".rjust(length - len(prefix), "0")  # SIZE=000…01: a long but valid number
    assert len(line) == length
    reply = await client.cmd(line)
    assert reply.startswith("250") if accepted else reply == "500 5.5.2 Error: command line too long", reply


async def send_body(client: Client, body: bytes) -> str:
    assert (await client.cmd("EHLO client.test")).startswith("250")
    assert (await client.cmd("MAIL FROM:<a@sender.test>")).startswith("250")
    assert (await client.cmd("RCPT TO:<b@example.test>")).startswith("250")
    assert (await client.cmd("DATA")).startswith("354")
    return await client.cmd(body + b"\r\n.")


@pytest.mark.parametrize("text, accepted", [
    (b"y" * 997, True), (b"y" * 998, True),          # RFC 5321: 998 characters + CRLF
    (b"." + b"y" * 997, True),                         # 998 characters starting with a dot: 999 on the wire
    (b"y" * 999, True),                                # one more than the RFC's floor: accepted (lenient)
    (b"y" * 1000, False), (b"y" * 1001, False),
])
async def test_text_line_limit_at_the_edge(smtp, text, accepted):
    client, handler = smtp
    wire = b"." + text if text.startswith(b".") else text  # the client's transparency dot
    reply = await send_body(client, b"Subject: edge\r\n\r\n" + wire + b"\r\nafter")
    if accepted:
        assert reply == "250 2.0.0 Ok: queued", (len(text), reply)
        assert handler.bodies == [b"Subject: edge\r\n\r\n" + text + b"\r\nafter\r\n"]
    else:
        assert reply == "500 5.5.2 Error: text line too long (limit 1000 bytes)", (len(text), reply)
        assert handler.bodies == []
