"""GatewaySMTP.spawn: each connection's session is copied from a template built once (aiosmtpd's __init__ builds its
command tables with inspect.getmembers per connection). A spawned session must be a session of its own: its command
table bound to itself, its own error count, and two clients one after the other each get a clean session."""
import asyncio

from ingress.smtp_server import GatewaySMTP


class Handler:
    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        return "250 2.0.0 Ok: queued"


async def test_spawned_session_has_its_own_tables_and_state():
    template = GatewaySMTP(Handler(), max_errors=3, hostname="gw.test")
    a, b = template.spawn(), template.spawn()
    assert a is not b and a._stream_reader is not b._stream_reader and a._closed is not b._closed
    assert a._smtp_methods.keys() == template._smtp_methods.keys()
    assert all(m.__self__ is a for m in a._smtp_methods.values())
    assert all(m.method.__self__ is a for m in a._auth_methods.values() if m.is_builtin)
    assert a._handle_hooks == template._handle_hooks and a._handle_hooks is not template._handle_hooks
    a.error_count = 2
    assert b.error_count == 0 and template.spawn().error_count == 0


async def _session(port: int, commands: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await reader.readline()]
    for c in commands:
        writer.write(c + b"\r\n")
        while True:
            line = await reader.readline()
            replies.append(line)
            if line[3:4] != b"-":
                break
    writer.close()
    return replies


async def test_errors_of_one_connection_do_not_carry_to_the_next():
    template = GatewaySMTP(Handler(), max_errors=3, hostname="gw.test", ident="mailgate")
    server = await asyncio.get_running_loop().create_server(template.spawn, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    try:
        first = await _session(port, [b"EHLO c.test", b"BOGUS", b"BOGUS", b"QUIT"])
        assert first[-1].startswith(b"221")  # two errors: still under max_errors=3
        second = await _session(port, [b"EHLO c.test", b"BOGUS", b"BOGUS", b"MAIL FROM:<a@b.test>",
                                       b"RCPT TO:<u@example.test>", b"DATA"])
        assert second[-1].startswith(b"354")  # a fresh session: the first one's two errors are not counted here
    finally:
        server.close()
        await server.wait_closed()


async def test_the_ehlo_reply_is_written_at_once_with_every_line():
    class Writer:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        async def drain(self) -> None:
            pass

    session = GatewaySMTP(Handler(), max_errors=3, hostname="gw.test", data_size_limit=1000).spawn()
    session._writer = Writer()
    session.session = type("Session", (), {"peer": ("127.0.0.1", 1), "extended_smtp": False})()
    await session.smtp_EHLO("client.test")
    assert session._writer.writes == [b"250-gw.test\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 HELP\r\n"]
