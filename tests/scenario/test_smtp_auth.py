"""SMTP AUTH on ingress, the way a SmarterMail server relaying through mailgate logs in: STARTTLS, then AUTH PLAIN.

Real parts: the ingress process on loopback with a certificate from a throwaway CA (trustme), aiosmtplib as the
client, and for the end-to-end test the real broker, processor, egress and a recording outbound gateway.
"""
from __future__ import annotations

import asyncio
import ssl
import time

import aiosmtplib
import pytest
import trustme

from mailgate.core.passwords import hash_password
from tests.support.harness import SmtpPrimary, _wait_line, free_port
from tests.support.secrets import SMTP_AUTH_PASSWORD as PASSWORD, SMTP_AUTH_WRONG_PASSWORD as WRONG

pytestmark = pytest.mark.scenario
USER = "mailserver"
PW_HASH = hash_password(PASSWORD, n=2 ** 12)  # a cheaper scrypt cost keeps the burst test about timing, not CPU


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    d = tmp_path_factory.mktemp("tls")
    cert = authority.issue_cert("127.0.0.1", "gw.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    authority.cert_pem.write_to_path(str(d / "ca.pem"))
    return d


def _config(ca, implicit_port: int, extra: dict | None = None, noauth_port: int | None = None) -> dict:
    cfg = {"ingress": {
        "tls": {"cert_file": str(ca / "server.pem"), "key_file": str(ca / "server.pem")},
        "auth": {"users": [{"username": USER, "password_hash": PW_HASH},
                           {"username": "restricted", "password_hash": PW_HASH,
                            "allowed_senders": ["@sender.test"]}],
                 "limits": {"max_failures": 3, "window_s": 300, "delay_s": 0.5, "max_delay_s": 1.0}},
        "listeners": [{"name": "smtps", "port": implicit_port, "tls_mode": "implicit"},
                      {"name": "noauth", "port": noauth_port or free_port(), "tls_mode": "implicit", "auth": False}]}}
    for k, v in (extra or {}).items():
        cfg[k] = v
    return cfg


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, keeping its TCP transport: closing a TLS session ends the socket only after the TLS
    shutdown, which a loop about to close never runs — so the test aborts the socket itself."""

    raw: asyncio.Transport | None = None

    async def connect(self, *args, **kwargs):
        reply = await super().connect(*args, **kwargs)
        self.raw = self.transport
        return reply


_OPENED: list[_Client] = []


def _run(main):
    """asyncio.run(main()), closing every client it opened before its loop ends (no socket left to the GC)."""
    async def closing():
        try:
            return await main()
        finally:
            while _OPENED:
                c = _OPENED.pop()
                c.close()
                if c.raw is not None:
                    c.raw.abort()
            await asyncio.sleep(0)  # let the aborted transports' connection_lost run
    return asyncio.run(closing())


def _client(ca, port: int, source: str = "127.0.0.1", implicit: bool = False) -> _Client:
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    _OPENED.append(_Client(hostname="127.0.0.1", port=port, use_tls=implicit, start_tls=False, tls_context=ctx,
                           source_address=(source, 0), local_hostname="mail.sender.test", timeout=30))
    return _OPENED[-1]


async def _login(ca, port: int, password: str, source: str = "127.0.0.1") -> _Client:
    c = _client(ca, port, source)
    await c.connect()
    await c.ehlo()
    await c.starttls()
    await c.ehlo()
    await c.auth_plain(USER, password)
    return c


def _start_ingress_only(gateway, cfg: dict) -> None:
    """ingress alone (no broker): AUTH is decided before any message reaches Kafka."""
    gateway.configure(cfg)
    gateway.start("ingress", wait=False)
    _wait_line(gateway.workdir / "ingress-0.log", "(smtps, implicit TLS, AUTH)", gateway.procs["ingress"][0])


def test_authenticated_relay_end_to_end_and_wrong_password_relays_nothing(ca, gateway):
    outbound = SmtpPrimary().start()
    try:
        gateway.configure(_config(ca, free_port(), {"outbound_gateways": [
            {"name": "out", "address": "127.0.0.1", "port": outbound.port}]}))
        gateway.start_broker()
        gateway.start_all()

        async def send() -> str:
            c = await _login(ca, gateway.smtp_port, PASSWORD)
            errors, reply = await c.sendmail("alice@sender.test", ["bob@far.test"],
                                             b"Subject: relayed\r\n\r\nhello\r\n")
            await c.quit()
            assert not errors
            return reply.rsplit(" ", 1)[1]

        mid = _run(send)
        got = outbound.wait_for(1)[0]
        assert got.rcpt_tos == ["bob@far.test"] and b"with ESMTPSA id " + mid.encode() in got.data
        gateway.wait_events(mid, "MessageDelivered")
        received = [e for e in gateway.events(mid) if type(e).__name__ == "MessageReceived"][0]
        assert received.client_auth == USER and received.direction == "outbound"

        async def wrong() -> tuple[int, str, int]:
            c = _client(ca, gateway.smtp_port)
            await c.connect()
            await c.ehlo()
            await c.starttls()
            await c.ehlo()
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
                await c.auth_plain(USER, WRONG)
            await c.mail("alice@sender.test")
            rcpt = await c.execute_command(b"RCPT", b"TO:<bob@far.test>")
            await c.quit()
            return failed.value.code, failed.value.message, rcpt.code

        code, message, rcpt_code = _run(wrong)
        assert (code, message.split(" ")[0]) == (535, "5.7.8")
        assert rcpt_code == 554  # not logged in: relay denied
        assert len(outbound.messages) == 1
    finally:
        outbound.stop()
    logs = gateway.logs()
    assert "auth ok user='mailserver'" in logs and "auth failed user='mailserver'" in logs
    assert PASSWORD not in logs and WRONG not in logs


def test_auth_is_refused_before_tls_and_works_on_the_implicit_tls_listener(ca, gateway):
    implicit, noauth = free_port(), free_port()
    _start_ingress_only(gateway, _config(ca, implicit, noauth_port=noauth))

    async def run() -> None:
        c = _client(ca, gateway.smtp_port)
        await c.connect()
        ehlo = await c.ehlo()
        assert "AUTH" not in ehlo.message and "STARTTLS" in ehlo.message  # not offered before TLS
        refused = await c.execute_command(b"AUTH", b"PLAIN", b"AG1haWxzZXJ2ZXIAeA==")
        assert refused.code == 538 and refused.message.startswith("5.7.11")
        await c.quit()
        s = _client(ca, implicit, implicit=True)
        await s.connect()
        ehlo = await s.ehlo()
        assert "AUTH LOGIN PLAIN" in ehlo.message and "STARTTLS" not in ehlo.message
        ok = await s.auth_login(USER, PASSWORD)
        assert ok.code == 235
        await s.quit()
        n = _client(ca, noauth, implicit=True)
        await n.connect()
        assert "AUTH" not in (await n.ehlo()).message  # a listener with auth: false does not offer it
        await n.quit()

    _run(run)


def test_sender_restricted_login_may_only_use_its_own_domain(ca, gateway):
    _start_ingress_only(gateway, _config(ca, free_port()))

    async def run() -> tuple[int, int]:
        c = _client(ca, gateway.smtp_port)
        await c.connect()
        await c.ehlo()
        await c.starttls()
        await c.ehlo()
        await c.auth_plain("restricted", PASSWORD)
        other = await c.execute_command(b"MAIL", b"FROM:<ceo@elsewhere.test>")
        own = await c.execute_command(b"MAIL", b"FROM:<alice@sender.test>")
        await c.quit()
        return other.code, own.code

    assert _run(run) == (553, 250)


def test_brute_force_burst_is_slowed_then_refused_while_another_client_logs_in(ca, gateway):
    _start_ingress_only(gateway, _config(ca, free_port()))
    port = gateway.smtp_port

    async def attempt(source: str, password: str) -> tuple[int, float]:
        c = _client(ca, port, source)
        await c.connect()
        await c.ehlo()
        await c.starttls()
        await c.ehlo()
        began = time.monotonic()
        try:
            reply = await c.execute_command(b"AUTH", b"PLAIN", _plain(USER, password))
            code = reply.code
        except aiosmtplib.SMTPServerDisconnected:
            code = -1
        took = time.monotonic() - began
        if c.is_connected:
            await c.quit()
        return code, took

    async def run():
        burst = [await attempt("127.0.0.3", WRONG) for _ in range(3)]
        refused = await attempt("127.0.0.3", PASSWORD)  # even the right password: this address is shut out
        other = await attempt("127.0.0.2", PASSWORD)
        return burst, refused, other

    burst, refused, other = _run(run)
    assert [code for code, _ in burst] == [535, 535, 535]
    assert burst[0][1] >= 0.45 and burst[1][1] >= 0.95 and burst[2][1] >= 0.95  # 0.5 s, then capped at 1 s
    assert refused[0] == 421
    assert other[0] == 235
    assert "reason=too_many_auth_failures" in gateway.logs()


def _plain(user: str, password: str) -> bytes:
    import base64
    return base64.b64encode(f"\0{user}\0{password}".encode())
