"""AUTH users and DKIM keys managed on the admin API take effect in running stages, through the real broker.

A gateway starts with no SMTP AUTH user and no DKIM key. The admin API adds a user: the running ingress (no
restart) lets it log in with STARTTLS + AUTH PLAIN and relay; a changed password replaces the old one. The API then
generates a DKIM key: the running egress signs the next relayed message with it, and the delivered bytes verify
with dkimpy against the TXT record the API showed. The key never appears in clear in any log or Kafka segment.
"""
from __future__ import annotations

import asyncio

import aiosmtplib
import dkim
import pytest

from mailgate.core.config_events import effective_config, read_state
from mailgate.core.secrets import new_key
from mailgate.ops.admin.auth import hash_password
from tests.scenario.test_live_config import Admin
from tests.scenario.test_smtp_auth import _client, _run, ca  # noqa: F401  (ca is a fixture)
from tests.support.harness import SmtpPrimary
from tests.support.secrets import ADMIN_API_PASSWORD
from tests.support.secrets import MANAGED_AUTH_NEW_PASSWORD as NEW_PW
from tests.support.secrets import MANAGED_AUTH_PASSWORD as USER_PW
from tests.support.traffic import wait_until

pytestmark = pytest.mark.scenario
USER = "relay2"


def _message(tag: str) -> bytes:
    return (f"From: Alice <alice@sender.test>\r\nTo: carol@far.test\r\nSubject: {tag}\r\n"
            f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{tag}@sender.test>\r\n\r\n"
            f"Hello from {tag}.\r\n").encode()


def _relay(ca, port: int, password: str, tag: str) -> tuple[int, str]:
    """Log in over STARTTLS and relay one message: (code of AUTH, code of the end of DATA or '-')."""
    async def main() -> tuple[int, str]:
        c = _client(ca, port)
        await c.connect()
        await c.ehlo()
        await c.starttls()
        await c.ehlo()
        try:
            await c.auth_plain(USER, password)
        except aiosmtplib.SMTPAuthenticationError as err:
            return err.code, "-"
        except aiosmtplib.SMTPException as err:  # AUTH not offered yet
            return 0, type(err).__name__
        errors, reply = await c.sendmail("alice@sender.test", ["carol@far.test"], _message(tag))
        await c.quit()
        return 235, reply
    return _run(main)


def _applied(gateway, stage: str, version: str) -> bool:
    return f"configuration version {version} applied" in (gateway.workdir / f"{stage}-0.log").read_text()


def test_admin_made_login_and_dkim_key_work_on_running_stages(ca, gateway, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())  # inherited by the stages and the admin server
    out = SmtpPrimary().start()
    admin = None
    try:
        gateway.configure({
            "ingress": {"tls": {"cert_file": str(ca / "server.pem"), "key_file": str(ca / "server.pem")}},
            "outbound_gateways": [{"name": "out", "address": "127.0.0.1", "port": out.port}],
            "admin": {"username": "root", "password_hash": hash_password(ADMIN_API_PASSWORD, n=2 ** 12)}})
        gateway.start_broker()
        gateway.start_all()
        admin = Admin(gateway)
        assert _relay(ca, gateway.smtp_port, USER_PW, "before")[0] != 235  # no login exists yet

        r = admin.http.post("/api/auth-users", json={"username": USER, "password": USER_PW})
        assert r.status_code == 201, r.text
        version = r.headers["X-Mailgate-Config-Version"]
        wait_until(lambda: _applied(gateway, "ingress", version), 60, "ingress to apply the new user")
        code, reply = _relay(ca, gateway.smtp_port, USER_PW, "first")
        assert code == 235 and reply.startswith("2.0.0"), reply
        first = out.wait_for(1)[0].data
        assert b"with ESMTPSA" in first and not first.startswith(b"DKIM-Signature")

        r = admin.http.put(f"/api/auth-users/{USER}", json={"password": NEW_PW})
        assert r.status_code == 200, r.text
        version = r.headers["X-Mailgate-Config-Version"]
        wait_until(lambda: _applied(gateway, "ingress", version), 60, "ingress to apply the new password")
        assert _relay(ca, gateway.smtp_port, USER_PW, "old")[0] == 535

        r = admin.http.post("/api/dkim-keys", json={"domain": "sender.test", "selector": "live1"})
        assert r.status_code == 201, r.text
        record, version = r.json()["record"], r.headers["X-Mailgate-Config-Version"]
        wait_until(lambda: _applied(gateway, "egress", version), 60, "egress to apply the new key")
        code, reply = _relay(ca, gateway.smtp_port, NEW_PW, "signed")
        assert code == 235, reply
        signed = out.wait_for(2)[1].data
    finally:
        if admin is not None:
            admin.stop()
        out.stop()
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test;")
    assert b"s=live1" in signed.partition(b"\r\n\r\n")[0]
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record.encode()
                       if name == b"live1._domainkey.sender.test." else None)
    _no_key_in_clear(gateway)


def _no_key_in_clear(gateway) -> None:
    """The generated key's PEM body (read back from mail.config with the secret key) is in no log or segment."""
    state, _ = asyncio.run(read_state(gateway.cfg))
    [key] = effective_config(gateway.cfg, state).dkim_signing.keys
    line = key.private_key.reveal().splitlines()[3].encode()
    files = [p for p in gateway.workdir.rglob("*") if p.is_file() and (p.suffix == ".log" or p.name.endswith(".log"))]
    assert files and not [str(p) for p in files if line in p.read_bytes()]
