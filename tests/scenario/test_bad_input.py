"""Bad SMTP input is refused with the exact reply and nothing is published; odd-but-legal mail passes untouched.

One real broker, the processor and egress, a recording primary, and four ingress processes on their own ports:
`main` (defaults: bare_lf=reject, max_recipients=3, max_message_bytes=1 MiB), `strict` (STARTTLS with a trustme
certificate, max_errors=3), `idle` (idle_timeout_s=2) and `lenient` (bare_lf=normalize). Clients speak raw bytes over sockets.
"""
from __future__ import annotations

import asyncio
import base64
import smtplib
import socket
import ssl
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

from mailgate.core import topics
from mailgate.ops.audit.reader import read_topic
from tests.support.harness import Gateway, SmtpPrimary, free_port, send_marker

pytestmark = pytest.mark.scenario
LIMIT = 1024 * 1024


class Raw:
    """An SMTP client that sends exactly the bytes it is given and reads whole (multi-line) replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """The next reply, its lines joined by newlines ('' at EOF)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line: str | bytes) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def start(self, sender: str, rcpts: list[str]) -> None:
        assert self.reply().startswith("220 ")
        assert self.cmd("EHLO client.test").startswith("250")
        assert self.cmd(f"MAIL FROM:<{sender}>").startswith("250 "), sender
        for r in rcpts:
            assert self.cmd(f"RCPT TO:<{r}>").startswith("250 "), r


def inbound(primary_port: int) -> dict:
    return {"inbound_gateways": [{
        "name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
        "primary_port": primary_port, "domain_verification": {"mode": "specified_domains",
                                                              "domains": ["example.test"]}}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    work: Path = tmp_path_factory.mktemp("bad-input")
    ca = trustme.CA()
    cert = ca.issue_cert("gw.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(work / "cert.pem"))
    primary = SmtpPrimary().start()
    g = Gateway(work)
    base = {**inbound(primary.port), "ingress": {"max_recipients": 3, "max_message_bytes": LIMIT}}
    strict_port, lenient_port, idle_port = free_port(), free_port(), free_port()
    try:
        g.configure(base)
        g.start_broker()
        g.start_all()
        # The 2 s idle timeout has an ingress of its own: on a loaded machine the STARTTLS and error-budget
        # sessions must not be cut off by it between two commands.
        g.configure({**base, "ingress": {"listen_port": idle_port, "idle_timeout_s": 2}})
        g.start("ingress")
        g.configure({**base, "ingress": {"listen_port": strict_port, "max_errors": 3,
                                         "tls": {"cert_file": str(work / "cert.pem"),
                                                 "key_file": str(work / "cert.pem")}}})
        g.start("ingress")
        g.configure({**base, "ingress": {"listen_port": lenient_port, "bare_lf": "normalize"}})
        g.start("ingress")
        g.configure(base)
        client_tls = ssl.create_default_context()
        ca.configure_trust(client_tls)
        yield SimpleNamespace(g=g, primary=primary, main=g.smtp_port, strict=strict_port, lenient=lenient_port,
                              idle=idle_port, client_tls=client_tls)
    finally:
        g.stop_all()
        if g.cfg is not None:
            g.release()
        primary.stop()


def published(g: Gateway, sender: str) -> list:
    """MessageReceived records in mail.received whose envelope sender is `sender`."""
    async def read() -> list:
        return [e async for _, e in read_topic(g.cfg, topics.RECEIVED) if e.mail_from == sender]
    return asyncio.run(read())


def arrived(gw, sender: str, timeout_s: float = 90) -> list:
    """The messages from `sender` at the primary, once at least one is there and a marker sent after it arrived
    too (a duplicate, if any, would have been queued before the marker)."""
    primary = gw.primary
    deadline = time.monotonic() + timeout_s
    while not [m for m in primary.messages if m.mail_from == sender]:
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing from {sender} reached the primary within {timeout_s}s")
        time.sleep(0.2)
    marker = f"marker-{sender}"
    send_marker(gw.main, "bob@example.test", sender=marker)
    while not [m for m in primary.messages if m.mail_from == marker]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the marker after {sender} did not reach the primary within {timeout_s}s")
        time.sleep(0.2)
    return [m for m in primary.messages if m.mail_from == sender]


def unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@sender.test"


# 1. SMTP smuggling ---------------------------------------------------------------------------------------------
LOOKALIKES = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\n", b"\r\n.\r", b"\r\n.\n", b"\r\n\x00.\r\n"]


def smuggle(port: int, sender: str, eod: bytes) -> list[str]:
    """Send a body holding `eod` and a whole second transaction, then the real end; every reply after 354."""
    c = Raw(port)
    try:
        c.start(sender, ["bob@example.test"])
        assert c.cmd("DATA").startswith("354 ")
        c.send(b"Subject: smuggle\r\n\r\nfirst" + eod + b"MAIL FROM:<" + sender.encode() + b">\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
        replies = []
        while r := c.reply():
            replies.append(r)
        return replies
    finally:
        c.close()


@pytest.mark.parametrize("eod", LOOKALIKES, ids=[repr(e)[2:-1] for e in LOOKALIKES])
def test_smuggling_lookalike_never_yields_two_messages(gw, eod):
    sender = unique("smuggle")
    replies = smuggle(gw.main, sender, eod)
    if b"\x00" in eod:  # no bare CR/LF: one message, the would-be second inside its body
        assert len(replies) == 2 and replies[0].startswith("250 2.0.0 Ok: queued as ") and replies[1].startswith(
            "221"), replies
        got = published(gw.g, sender)
        assert len(got) == 1 and b"\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" in got[0].body
        assert len(arrived(gw, sender)) == 1
    else:
        assert replies == ["550 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>", "221 2.0.0 Bye"]
        assert published(gw.g, sender) == []


@pytest.mark.parametrize("eod", LOOKALIKES[:6], ids=[repr(e)[2:-1] for e in LOOKALIKES[:6]])
def test_bare_lf_normalized_reaches_primary_as_one_crlf_message(gw, eod):
    sender = unique("normalize")
    replies = smuggle(gw.lenient, sender, eod)
    assert len(replies) == 2 and replies[0].startswith("250 2.0.0 Ok: queued as "), replies
    assert len(published(gw.g, sender)) == 1
    data = arrived(gw, sender)[0].data
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    # The look-alike became a real lone-dot line inside the one message (egress dot-stuffed it on the way out) —
    # except where it began a CRLF line (`\r\n.\r`, `\r\n.\n`): aiosmtpd removed that dot as transparency first.
    dot = b"" if eod.startswith(b"\r\n") else b"."
    assert b"first\r\n" + dot + b"\r\nMAIL FROM:<" + sender.encode() + b">\r\n" in data, data


# 2. Open-relay address forms, as raw RCPT arguments -----------------------------------------------------------
RELAY_FORMS = [
    "<user@[203.0.113.9]>", "<user@[127.0.0.1]>", "<user%elsewhere.test@example.test>", "<user%elsewhere.test>",
    '<"user@elsewhere.test">', '<"user@elsewhere.test"@example.test>', '<"user%elsewhere.test"@example.test>',
    "<user@elsewhere.test@example.test>", "<user@example.test@elsewhere.test>",
    "<@example.test:user@elsewhere.test>", "<@example.test,@example.test:user@elsewhere.test>",
    "<elsewhere.test!user>", "<elsewhere.test!user@example.test>", "<user@elsewhere.test>",
    "<user@localhost>", "<user>", "<user@example.test.elsewhere.test>", "user@elsewhere.test",
    "<user@elsewhere.test >", "<elsewhere.test!user%example.test@example.test>", "<us\udcffer@example.test>",
]


def test_relay_forms_from_unauthorised_client_are_refused_554_with_raw_form_judged(gw):
    sender = unique("relay")
    for form in RELAY_FORMS:
        c = Raw(gw.main)
        try:
            c.start(sender, [])
            reply = c.cmd(f"RCPT TO:{form}".encode("utf-8", "surrogateescape"))
            assert reply.startswith("554 5.7.1 <") and reply.endswith("Relay access denied"), (form, reply)
            assert c.cmd("DATA").startswith("503 5.5.1"), form
        finally:
            c.close()
    assert published(gw.g, sender) == []
    seen = {e.recipient for e in gw.g.events() if type(e).__name__ == "RecipientRejected" and e.mail_from == sender}
    expected = {f.strip().removeprefix("<").removesuffix(">") for f in RELAY_FORMS if f.isprintable()}
    assert seen >= expected, expected - seen  # the policy judged each form exactly as the client sent it


# 3. Limits ------------------------------------------------------------------------------------------------------
def test_limits_give_exact_replies_and_publish_nothing(gw):
    sender = unique("limits")
    c = Raw(gw.main)
    try:
        c.start(sender, ["bob@example.test", "carol@example.test", "dave@example.test"])
        assert c.cmd("RCPT TO:<erin@example.test>") == "452 4.5.3 Error: too many recipients"
        assert c.cmd("NOOP " + "x" * 507) == "250 2.0.0 Ok"  # 512 characters + CRLF: the limit
        assert c.cmd("NOOP " + "x" * 508) == "500 5.5.2 Error: command line too long"  # 513
        assert c.cmd("NOOP " + "x" * 5000) == "500 5.5.2 Error: command line too long"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd(f"MAIL FROM:<{sender}> SIZE={LIMIT + 1}") == "552 5.3.4 Error: message size exceeds fixed limit"
        assert c.cmd(f"MAIL FROM:<{sender}> SIZE={LIMIT}").startswith("250 ")
        assert c.cmd("RCPT TO:<bob@example.test>").startswith("250 ")
        assert c.cmd("DATA").startswith("354 ")
        reply = c.cmd(b"Subject: long line\r\n\r\n" + b"y" * 1000 + b"\r\nafter\r\n.")  # 1002 with CRLF
        assert reply == "500 5.5.2 Error: text line too long (limit 1000 bytes)"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    finally:
        c.close()
    assert published(gw.g, sender) == []


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_oversized_body_is_refused_552_and_ingress_memory_stays_bounded(gw):
    sender = unique("big")
    pid = gw.g.procs["ingress"][0].pid
    before = _hwm_kib(pid)
    c = Raw(gw.main)
    try:
        c.start(sender, ["bob@example.test"])
        assert c.cmd("DATA").startswith("354 ")
        line = b"z" * 998 + b"\r\n"
        chunk = b"Subject: big\r\n\r\n" + line * 1024  # ~1 MiB per send, 32 sends = 32 x the limit
        for _ in range(32):
            c.send(chunk)
        assert c.cmd(b".") == "552 5.3.4 Error: message size exceeds fixed limit"
    finally:
        c.close()
    growth_kib = _hwm_kib(pid) - before
    print(f"ingress VmHWM growth while refusing 32 MiB with a 1 MiB limit: {growth_kib} KiB")
    assert growth_kib < 16 * 1024
    assert published(gw.g, sender) == []


def test_idle_client_gets_421_4_4_2_and_is_disconnected(gw):
    c = Raw(gw.idle)
    try:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO client.test").startswith("250")
        idle_from = time.monotonic()
        assert c.reply() == "421 4.4.2 gw.test Error: timeout exceeded"
        assert time.monotonic() - idle_from >= 1.9  # not before idle_timeout_s (2 s)
        assert c.reply() == ""  # EOF
    finally:
        c.close()


def test_too_many_errors_gives_421_and_disconnects(gw):
    c = Raw(gw.strict)
    try:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO client.test").startswith("250")
        assert c.cmd("RCPT TO:<bob@example.test>") == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
        assert c.cmd("MAIL FROM:<bad") == "553 5.1.3 Error: malformed address"
        assert c.reply() == "421 4.7.0 gw.test Error: too many errors"
        assert c.reply() == ""
    finally:
        c.close()


def test_plaintext_pipelined_behind_starttls_is_discarded_and_auth_needs_tls(gw):
    secret = base64.b64encode(b"\0alice\0hunter2-secret").decode()
    c = Raw(gw.strict)
    try:
        assert c.reply().startswith("220 ")
        ehlo = c.cmd("EHLO client.test")
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo
        assert c.cmd(f"AUTH PLAIN {secret}") == "538 5.7.11 Encryption required for requested authentication mechanism"
        # A man in the middle appends plaintext commands behind STARTTLS in the same packet.
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\nRCPT TO:<bob@example.test>\r\n")
        assert c.reply() == "220 2.0.0 Ready to start TLS"
        tls = gw.client_tls.wrap_socket(c.sock, server_hostname="gw.test")
        c.sock, c.buf = tls, b""
        assert c.cmd("EHLO client.test").startswith("250")
        assert c.cmd("RCPT TO:<bob@example.test>") == "503 5.5.1 Error: need MAIL command"  # MAIL was discarded
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    finally:
        c.close()
    assert secret not in gw.g.logs() and "hunter2" not in gw.g.logs()
    assert published(gw.g, "evil@sender.test") == []


# 4. Malformed MIME passes through untouched ---------------------------------------------------------------------
MALFORMED = {
    "broken-boundary": b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"AAA\"\r\n\r\n--AAB\r\n"
                       b"Content-Type: text/plain\r\n\r\npart\r\n--AAA\r\nno headers, no close\r\n",
    "wrong-type": b"Content-Type: image/png; charset=\"\r\nContent-Transfer-Encoding: base64\r\n\r\nnot base64 !!\r\n",
    "no-boundary": b"Content-Type: multipart/alternative\r\n\r\n--x\r\ny\r\n",
    "long-header": b"Subject: " + b"s" * 980 + b"\r\nX-Long: " + b"h" * 990 + b"\r\n\r\nbody\r\n",
    "nul-and-8bit": b"Subject: nul\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnul\x00in\x00body\r\n"
                    b"\xff\xfe latin \xe9\r\n..dot line\r\n",
    "headerless": b"just a body line, no header, no blank line\r\n",
}


def test_malformed_mime_reaches_primary_byte_identical(gw):
    senders = {}
    for name, body in MALFORMED.items():
        sender = senders[name] = unique(name)
        with smtplib.SMTP("127.0.0.1", gw.main, timeout=60) as s:
            s.ehlo("client.test")
            s.mail(sender, ["BODY=8BITMIME"])
            assert s.rcpt("bob@example.test")[0] == 250
            code, reply = s.data(body)
            assert code == 250, (name, reply)
    for name, body in MALFORMED.items():
        got = arrived(gw, senders[name])
        assert len(got) == 1, name
        data = got[0].data
        assert data.endswith(body), name
        added = data[:-len(body)]
        assert added.startswith(b"Received: from client.test") and added.count(b"Received:") == 1, (name, added)
    assert all(p.poll() is None for procs in gw.g.procs.values() for p in procs), gw.g.logs()[-3000:]


# 5. PIPELINING (RFC 2920) and ENHANCEDSTATUSCODES (RFC 2034) ---------------------------------------------------
def test_ehlo_offers_pipelining_and_enhanced_status_codes_on_every_listener(gw):
    for port in (gw.main, gw.strict, gw.idle, gw.lenient):
        c = Raw(port)
        try:
            assert c.reply().startswith("220 ")
            lines = [line[4:] for line in c.cmd("EHLO client.test").splitlines()]
            assert "PIPELINING" in lines and "ENHANCEDSTATUSCODES" in lines, (port, lines)
            assert lines[-1] == "HELP" and lines.index("PIPELINING") < lines.index("ENHANCEDSTATUSCODES"), lines
        finally:
            c.close()


def test_a_pipelined_envelope_gets_its_replies_in_order_and_the_message_is_delivered(gw):
    sender = unique("pipelined")
    c = Raw(gw.main)
    try:
        assert c.reply().startswith("220 ")
        assert c.cmd("EHLO client.test").startswith("250")
        c.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<nobody@elsewhere.test>\r\n"
               f"DATA\r\n".encode())  # one write: the group RFC 2920 allows, DATA last
        assert [c.reply()[:9] for _ in range(4)] == ["250 2.1.0", "250 2.1.5", "554 5.7.1", "354 End d"]
        assert c.cmd(b"Subject: pipelined\r\n\r\nhello\r\n.").startswith("250 2.0.0 Ok: queued as ")
        assert c.cmd("QUIT").startswith("221")
    finally:
        c.close()
    assert len(arrived(gw, sender)) == 1


def test_message_text_sent_before_the_354_is_refused_and_nothing_is_published(gw):
    """A client that does not wait for the reply to DATA (Postfix: "improper command pipelining after DATA"):
    PIPELINING makes DATA the last command of a group, so text behind it in the same write is refused."""
    sender = unique("early-text")
    c = Raw(gw.main)
    try:
        c.start(sender, ["bob@example.test"])
        c.send(b"DATA\r\nSubject: early\r\n\r\nsent before the 354\r\n.\r\n")
        assert c.reply() == "554 5.5.0 Error: SMTP protocol synchronization: message text sent before the 354 reply"
        assert c.reply() == ""  # and the connection is closed
    finally:
        c.close()
    send_marker(gw.main, "bob@example.test")
    assert published(gw.g, sender) == []
    assert "reason=pipelining_violation" in gw.g.logs()


# 6. A client cannot write into the operator's log ---------------------------------------------------------------
def test_junk_sessions_leave_escaped_cut_and_summarised_log_lines(gw):
    """Tried as an attacker would: many sessions of unknown commands carrying NUL, terminal escapes, a fake log line
    and 100 KB lines. Ingress keeps answering; its log holds no raw control byte, no line over a few hundred
    characters, and aiosmtpd's per-command warning is written at most BURST_LINES times per minute."""
    from mailgate.core.log_safety import BURST_LINES
    junk = [b"\x1b[2J\x1b]0;owned\x07HACK", b"XYZZY \x00\x00\x00", b"FOO\rINFO mailgate.ingress: fake line",
            b"BAR " + b"A" * 100_000]
    for _ in range(40):
        c = Raw(gw.idle)
        try:
            assert c.reply().startswith("220 ")
            for line in junk:
                c.send(line + b"\r\n")
            c.reply()
        finally:
            c.close()
    c = Raw(gw.idle)
    try:
        assert c.reply().startswith("220 ") and c.cmd("QUIT").startswith("221")  # still up and answering
    finally:
        c.close()
    log = (gw.g.workdir / "ingress-1.log").read_bytes()  # the idle listener's ingress (the second started)
    assert b"\x1b" not in log and b"\x00" not in log and b"\x07" not in log
    assert max(len(line) for line in log.splitlines()) < 2000
    assert log.count(b"unrecognised") <= BURST_LINES + 1
