"""ESMTP as real clients speak it to ingress: BDAT (RFC 3030 CHUNKING) and Debian's Postfix 3.7 relaying into
mailgate with PIPELINING.

One real broker and the three stages for the module, one real aiosmtpd primary for `example.test`, ingress with a
small size limit (`LIMIT_BYTES`). Shown: a message sent as several BDAT chunks and `BDAT 0 LAST`, pipelined, is
delivered byte for byte (after ingress's Received header); a BDAT stream past the size limit is refused `552` and
nothing of it is delivered; a private Postfix instance (tests/support/postfix.py) relaying into ingress pipelines
its commands — its log says "Using ESMTP PIPELINING" for mailgate's port and shows MAIL, RCPT and DATA written
before their replies — and every message arrives at the primary exactly once.
"""
from __future__ import annotations

import re
import smtplib
import socket
import time
from types import SimpleNamespace

import pytest

from tests.support.harness import Gateway, SmtpPrimary
from tests.support.ports import free_port
from tests.support import postfix

pytestmark = pytest.mark.scenario

LIMIT_BYTES = 200_000


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    primary = SmtpPrimary().start()
    g = Gateway(tmp_path_factory.mktemp("esmtp"))
    try:
        g.configure({"ingress": {"max_message_bytes": LIMIT_BYTES}, "inbound_gateways": [{
            "name": "home", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "primary_port": primary.port,
            "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}]})
        g.start_broker()
        g.start_all()
        yield SimpleNamespace(g=g, primary=primary)
    finally:
        g.stop_all()
        if g.cfg is not None:
            g.stop_broker()
        primary.stop()


class Session:
    """A raw SMTP connection: bytes out, whole replies in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        assert self.replies(1)[0].startswith("220")

    def replies(self, n: int) -> list[str]:
        """`n` replies, each with its lines joined by newlines."""
        out = []
        for _ in range(n):
            lines = [self.file.readline().decode().rstrip("\r\n")]
            while lines[-1][3:4] == "-":
                lines.append(self.file.readline().decode().rstrip("\r\n"))
            out.append("\n".join(lines))
        return out

    def send(self, data: bytes, n: int = 1) -> list[str]:
        self.sock.sendall(data)
        return self.replies(n)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_a_message_in_several_pipelined_bdat_chunks_is_delivered_byte_for_byte(gw):
    message = (b"From: <alice@sender.test>\r\nSubject: chunked\r\nMessage-ID: <chunked@sender.test>\r\n\r\n"
               + b"".join(b"line %05d with a dot\r\n.\r\n" % i for i in range(2000))  # "." lines: data, not ends
               + b"last line\r\n")
    chunks = [message[:1000], message[1000:50_000], message[50_000:]]
    s = Session(gw.g.smtp_port)
    try:
        assert "250-CHUNKING" in s.send(b"EHLO client.test\r\n")[0]
        stream = b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.test>\r\n"
        stream += b"".join(b"BDAT %d\r\n" % len(c) + c for c in chunks) + b"BDAT 0 LAST\r\n"
        got = s.send(stream, 6)
    finally:
        s.close()
    assert got[:5] == ["250 2.1.0 Ok", "250 2.1.5 Ok"] + [f"250 2.0.0 Ok: {len(c)} octets received" for c in chunks]
    assert got[5].startswith("250 2.0.0 Ok: queued as "), got
    arrived = [m for m in gw.primary.wait_for(1, timeout_s=90) if b"<chunked@sender.test>" in m.data]
    assert len(arrived) == 1
    received, sep, rest = arrived[0].data.partition(b"\r\nFrom: ")
    assert received.startswith(b"Received: from client.test") and b"From: " + rest == message


def test_a_bdat_stream_past_the_size_limit_is_refused_552_and_not_delivered(gw):
    s = Session(gw.g.smtp_port)
    try:
        s.send(b"EHLO client.test\r\n")
        assert s.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.test>\r\n", 2)[1].startswith("250")
        big = b"Subject: too big\r\n\r\n" + b"x" * 998 + b"\r\n"
        assert s.send(b"BDAT %d\r\n" % len(big) + big)[0].startswith("250 2.0.0 Ok")
        over = b"y" * 998 + b"\r\n"
        replies = s.send(b"".join(b"BDAT %d\r\n" % len(over) + over for _ in range(250)) + b"BDAT 0 LAST\r\n", 251)
        assert replies[-1] == "552 5.3.4 Error: message size exceeds fixed limit", replies[-3:]
        assert "552 5.3.4 Error: message size exceeds fixed limit" in replies[:200]
        assert s.send(b"NOOP\r\n") == ["250 2.0.0 Ok"]  # the session goes on
    finally:
        s.close()
    time.sleep(3)
    assert not [m for m in gw.primary.messages if b"Subject: too big" in m.data]


@pytest.mark.skipif(not postfix.available(), reason="needs /usr/sbin/postfix and root")
def test_postfix_relaying_into_mailgate_pipelines_and_every_message_arrives_once(gw):
    pf = postfix.PrivatePostfix(free_port(), gw.g.smtp_port).start()
    try:
        ids = [f"<postfix-{i}@sender.test>" for i in range(5)]
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as c:
            c.ehlo("client.test")
            for i, mid in enumerate(ids):
                c.sendmail("alice@sender.test", [f"user{i}@example.test"],
                           f"From: <alice@sender.test>\r\nMessage-ID: {mid}\r\nSubject: via postfix {i}\r\n\r\n"
                           f"hello {i}\r\n".encode())
        deadline = time.monotonic() + 120
        while sum(m.data.count(b"Message-ID: <postfix-") for m in gw.primary.messages) < len(ids):
            assert time.monotonic() < deadline, pf.log()[-3000:]
            time.sleep(0.5)
        time.sleep(3)  # a duplicate would have arrived by now
        for mid in ids:
            assert sum(m.data.count(f"Message-ID: {mid}".encode()) for m in gw.primary.messages) == 1, mid
        log = pf.log()
    finally:
        pf.stop()
    port = gw.g.smtp_port
    client: dict[str, list[str]] = {}  # Postfix's smtp client processes, each one's lines in order
    for line in log.splitlines():
        if (m := re.search(r"/smtp\[(\d+)\]: (.*)$", line)):
            client.setdefault(m.group(1), []).append(m.group(2))
    assert client and all(any(line.startswith("Using ESMTP PIPELINING") for line in lines)
                          for lines in client.values()), log[-3000:]
    mails = 0
    for lines in client.values():
        talk = [line.partition(f"127.0.0.1[127.0.0.1]:{port}: ")[2] for line in lines
                if line.startswith(("> 127.0.0.1", "< 127.0.0.1"))]
        # Pipelined: MAIL, RCPT and DATA written ("> ") before MAIL's reply is read ("< ").
        for i, line in enumerate(talk):
            if line.startswith("MAIL FROM:"):
                mails += 1
                assert talk[i + 1].startswith("RCPT TO:") and talk[i + 2] == "DATA", talk[i:i + 4]
                assert talk[i + 3].startswith("250 2.1.0"), talk[i:i + 4]
    assert mails == len(ids)
    assert len(re.findall(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, .*status=sent", log)) == len(ids)
