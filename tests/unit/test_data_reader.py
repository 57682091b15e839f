"""ingress.data_reader: DATA read in chunks ends exactly where aiosmtpd's line reader would, never elsewhere."""
from __future__ import annotations

import asyncio
import itertools

import pytest

from ingress.data_reader import DataState, read_data


async def read(stream: bytes, size_limit: int | None = 10_000, line_limit: int = 1001, eof: bool = True):
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(stream)
    if eof:
        reader.feed_eof()
    data = await read_data(reader, size_limit, line_limit)
    rest = await reader.read() if eof else b""
    return data, rest


async def test_message_ends_at_crlf_dot_crlf_and_what_follows_stays_for_the_next_command():
    data, rest = await read(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert data.state is DataState.OK and data.content == b"Subject: x\r\n\r\nbody\r\n" and rest == b"QUIT\r\n"


async def test_empty_message():
    data, rest = await read(b".\r\nQUIT\r\n")
    assert (data.state, data.content, rest) == (DataState.OK, b"", b"QUIT\r\n")


async def test_dot_stuffing_is_undone_once():
    data, _ = await read(b"..leading\r\na\r\n...two\r\n.\r\n")
    assert data.content == b".leading\r\na\r\n..two\r\n"


@pytest.mark.parametrize("lookalike", [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r\n.\r", b"\r\n.\n",
                                       b"\r\n\x00.\r\n", b"x.\r\n"])
async def test_smuggling_lookalikes_are_data_not_an_end(lookalike):
    second = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nsmuggled\r\n"
    data, rest = await read(b"first" + lookalike + second + b".\r\nQUIT\r\n")
    assert data.state is DataState.OK and second in data.content and rest == b"QUIT\r\n"


async def test_too_big_is_drained_to_the_end_and_refused():
    body = b"x" * 500 + b"\r\n"
    data, rest = await read(body * 100 + b".\r\nQUIT\r\n", size_limit=10_000)
    assert data.state is DataState.TOO_MUCH and rest == b"QUIT\r\n"


async def test_exactly_at_the_size_limit_is_accepted():
    body = (b"y" * 98 + b"\r\n") * 100  # 10,000 bytes
    data, _ = await read(body + b".\r\n", size_limit=10_000)
    assert data.state is DataState.OK and len(data.content) == 10_000


async def test_a_text_line_over_1000_bytes_is_refused_after_the_end():
    data, rest = await read(b"a" * 1000 + b"\r\n.\r\nQUIT\r\n")
    assert data.state is DataState.TOO_LONG and rest == b"QUIT\r\n"
    ok, _ = await read(b"a" * 999 + b"\r\n.\r\n")
    assert ok.state is DataState.OK


async def test_connection_lost_before_the_end():
    data, _ = await read(b"half a message\r\n")
    assert data.state is DataState.LOST


async def test_end_split_across_network_reads():
    reader = asyncio.StreamReader(limit=1001)
    task = asyncio.create_task(read_data(reader, 10_000, 1001))
    for piece in (b"line one\r", b"\n", b".", b"\r", b"\nNOOP\r\n"):
        reader.feed_data(piece)
        await asyncio.sleep(0)
    data = await task
    assert data.content == b"line one\r\n" and await reader.readuntil(b"\r\n") == b"NOOP\r\n"


async def test_the_bare_line_ending_flag_agrees_with_the_handlers_check_on_every_short_mix():
    """read_data finds bare CR/LF in the pass that measures line lengths; the handler trusts its flag."""
    from mailgate.mail.line_endings import has_bare_line_ending
    for n in range(6):
        for combo in itertools.product((b"a", b".", b"\r", b"\n"), repeat=n):
            body = b"".join(combo)
            data, _ = await read(body + b"\r\n.\r\n")
            if data.state is DataState.OK:
                assert data.bare_line_ending == has_bare_line_ending(data.content), body
