"""Egress pipelines the envelope (RFC 2920) to a server that offers PIPELINING: MAIL, RCPT and DATA in one write,
their replies read in order however the server splits them, the body only after 354; and, with or without
PIPELINING, DATA only after the write-ahead record was acknowledged.

The server is a real one on loopback, written here so that each test decides every reply and can see how the
commands arrived: it answers a group of commands once DATA came or nothing more came for 50 ms, so a client that
waits for each reply shows as one group per command.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from egress.errors import ConnectFailed, ConnectionLostAfterData
from egress.smtp_session import SmtpSession, data_payload
from egress.targets import Target
from mailgate.core.config import DeliveryConfig

Script = Callable[[list[bytes]], list[bytes] | None]
"""The commands of one group → the replies, in order (written one per segment); None closes the connection."""


class ScriptedServer:
    def __init__(self, script: Script, final: bytes | None = b"250 2.0.0 queued", pipelining: bool = True) -> None:
        self.script = script
        self.final = final
        self.pipelining = pipelining
        self.groups: list[list[bytes]] = []
        self.bodies: list[bytes] = []
        self.data_at: list[float] = []  # loop time each DATA command arrived

    async def __aenter__(self) -> "ScriptedServer":
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted.test ESMTP\r\n")
        await reader.readline()  # EHLO
        offer = b"250-PIPELINING\r\n" if self.pipelining else b""
        writer.write(b"250-scripted.test\r\n" + offer + b"250 8BITMIME\r\n")
        while True:
            group: list[bytes] = []
            while not group or group[-1] not in (b"DATA", b"QUIT"):
                try:
                    line = await (asyncio.wait_for(reader.readline(), 0.05) if group else reader.readline())
                except asyncio.TimeoutError:
                    break  # nothing more pipelined: answer what came
                if not line:
                    return
                group.append(line.rstrip(b"\r\n"))
            if group[-1] == b"DATA":
                self.data_at.append(asyncio.get_running_loop().time())
            if group == [b"QUIT"]:
                writer.write(b"221 bye\r\n")
                await writer.drain()
                writer.close()
                return
            self.groups.append(group)
            replies = self.script(group)
            if replies is None:
                writer.close()
                return
            for reply in replies:  # one segment each: the client must not lose the later ones
                writer.write(reply + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.005)
            if replies[-1].startswith(b"354"):
                body = b""
                while not body.endswith(b"\r\n.\r\n") and body != b".\r\n":
                    body += await reader.readline()
                self.bodies.append(body)
                if self.final is None:
                    writer.close()
                    return
                writer.write(self.final + b"\r\n")


def answers(**by_command: bytes) -> Script:
    """250 to every command, 354 to DATA, except the replies given per command word or per recipient."""
    def script(group: list[bytes]) -> list[bytes]:
        out = []
        for cmd in group:
            word = cmd.split(b" ")[0].decode()
            rcpt = cmd[9:-1].decode() if word == "RCPT" else None
            out.append(by_command.get(rcpt or "", by_command.get(word, b"354 go" if word == "DATA" else b"250 ok")))
        return out
    return script


async def session_to(server: ScriptedServer) -> SmtpSession:
    s = SmtpSession(Target("gw", "127.0.0.1", server.port), DeliveryConfig(helo_name="gw.test", command_timeout_s=5))
    await s.open()
    return s


async def send(s: SmtpSession, *args):
    return await asyncio.wait_for(s.send(*args), 10)  # a client waiting for each reply would hang here


BODY = b"Subject: t\r\n\r\n.a line starting with a dot\r\nend\r\n"


async def test_the_envelope_goes_in_one_group_and_split_replies_are_all_read():
    async with ScriptedServer(answers(**{"no@far.test": b"550 5.1.1 no such user"})) as server:
        s = await session_to(server)
        results = await send(s, "a@src.test", ["b@far.test", "no@far.test"], BODY)
        await s.close()
    assert server.groups == [[b"MAIL FROM:<a@src.test>", b"RCPT TO:<b@far.test>", b"RCPT TO:<no@far.test>",
                              b"DATA"]]
    assert [(r, rep.code, rep.enhanced_code) for r, rep in results] == [
        ("b@far.test", 250, "2.0.0"), ("no@far.test", 550, "5.1.1")]
    assert server.bodies == [b"".join(data_payload(BODY))]  # dot-stuffed, ended by "."


async def two_messages(first_replies: Script) -> tuple[list, list, ScriptedServer]:
    """Two messages over one session; the server answers the first group with `first_replies`, then all is well."""
    groups = iter([first_replies])

    def script(group):
        return next(groups, answers())(group)

    async with ScriptedServer(script) as server:
        s = await session_to(server)
        first = await send(s, "a@src.test", ["b@far.test"], BODY)
        second = await send(s, "a@src.test", ["b@far.test"], BODY)
        await s.close()
    return first, second, server


async def test_a_refused_mail_answers_for_every_recipient_sends_no_body_and_the_session_goes_on():
    first, second, server = await two_messages(
        lambda group: [b"451 4.3.0 try later", b"503 5.5.1 need MAIL", b"503 5.5.1 need RCPT"])
    assert [(r, rep.code) for r, rep in first] == [("b@far.test", 451)]
    assert [(r, rep.code) for r, rep in second] == [("b@far.test", 250)]
    assert server.groups[1][0].startswith(b"MAIL")  # no transaction was left open: no RSET
    assert len(server.bodies) == 1


async def test_a_refused_data_answers_for_the_accepted_recipients_and_the_next_message_starts_with_rset():
    first, second, server = await two_messages(answers(DATA=b"554 5.7.1 not now"))
    assert [(r, rep.code) for r, rep in first] == [("b@far.test", 554)]
    assert [(r, rep.code) for r, rep in second] == [("b@far.test", 250)]
    assert server.groups[1][:2] == [b"RSET", b"MAIL FROM:<a@src.test>"]


async def test_every_recipient_refused_and_data_accepted_anyway_ends_with_an_empty_message():
    async with ScriptedServer(answers(RCPT=b"550 5.1.1 no")) as server:
        s = await session_to(server)
        results = await send(s, "a@src.test", ["b@far.test"], BODY)
        await s.close()
    assert [(r, rep.code) for r, rep in results] == [("b@far.test", 550)]
    assert server.bodies == [b".\r\n"]  # the message itself was never sent


async def test_a_connection_dropped_before_the_mail_reply_fails_at_mail():
    async with ScriptedServer(lambda group: None) as server:
        s = await session_to(server)
        with pytest.raises(ConnectFailed) as err:
            await send(s, "a@src.test", ["b@far.test"], BODY)
        await s.close()
    assert err.value.step == "mail"  # what the pool retries once on a fresh connection
    assert server.bodies == []


async def test_a_connection_dropped_after_the_body_says_the_server_may_have_it():
    async with ScriptedServer(answers(), final=None) as server:
        s = await session_to(server)
        with pytest.raises(ConnectionLostAfterData):
            await send(s, "a@src.test", ["b@far.test"], BODY)
        await s.close()
    assert len(server.bodies) == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-a-time"])
async def test_data_waits_for_the_write_ahead_record_and_the_envelope_goes_meanwhile(pipelining):
    loop = asyncio.get_running_loop()
    async with ScriptedServer(answers(), pipelining=pipelining) as server:
        s = await session_to(server)
        write_ahead = loop.create_future()
        acknowledged_at = []

        def acknowledge():
            acknowledged_at.append(loop.time())
            write_ahead.set_result(None)

        loop.call_later(0.2, acknowledge)
        results = await send(s, "a@src.test", ["b@far.test"], BODY, write_ahead)
        await s.close()
    assert [(r, rep.code) for r, rep in results] == [("b@far.test", 250)]
    assert server.data_at[0] >= acknowledged_at[0]
    if pipelining:  # the envelope did not wait: it went as a group, DATA alone after the acknowledgement
        assert server.groups == [[b"MAIL FROM:<a@src.test>", b"RCPT TO:<b@far.test>"], [b"DATA"]]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-a-time"])
@pytest.mark.parametrize("when", ["before", "during"])
async def test_a_failed_write_ahead_record_sends_no_data(pipelining, when):
    loop = asyncio.get_running_loop()
    async with ScriptedServer(answers(), pipelining=pipelining) as server:
        s = await session_to(server)
        write_ahead = loop.create_future()
        fail = lambda: write_ahead.set_exception(RuntimeError("Kafka refused the write-ahead record"))  # noqa: E731
        if when == "before":
            fail()
        else:
            loop.call_later(0.1, fail)
        with pytest.raises(RuntimeError, match="write-ahead"):
            await send(s, "a@src.test", ["b@far.test"], BODY, write_ahead)
        await s.close()
    assert server.data_at == [] and server.bodies == []
