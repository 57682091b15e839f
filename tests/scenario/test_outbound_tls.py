"""Outbound encryption and AUTH, and "verify connection before save", against real aiosmtpd servers.

The gateways are real SMTP servers on loopback with certificates from a throwaway CA (`trustme`): one that offers
no STARTTLS, one that requires STARTTLS and AUTH, one speaking implicit TLS; the two TLS ones offer PIPELINING, so
mail to them goes pipelined over TLS (egress/pipelining.py on a TLS transport). Delivery tests run the whole
mailgate on a real broker; verify tests call `egress.gateway_probe` and the `mailgate gateway verify` CLI directly.
"""
from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import sys

import pytest
import trustme
import yaml
from aiosmtpd.smtp import AuthResult, LoginPassword

from egress.gateway_probe import verify_gateway
from mailgate.core.config import DeliveryConfig, OutboundGateway
from tests.support.harness import ROOT, SmtpPrimary, free_port

pytestmark = pytest.mark.scenario

from tests.support.secrets import OUTBOUND_AUTH_PASSWORD as PASSWORD
USER = "relayuser"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


def _server_ctx(authority) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def servers(ca):
    """plain: no STARTTLS; starttls: STARTTLS required, AUTH; implicit: TLS from the first byte, AUTH."""
    authority, _ = ca
    made = {
        "plain": SmtpPrimary(),
        "starttls": SmtpPrimary(tls_context=_server_ctx(authority), require_starttls=True, pipelining=True,
                                authenticator=_authenticator, auth_required=True),
        "implicit": SmtpPrimary(ssl_context=_server_ctx(authority), authenticator=_authenticator, pipelining=True,
                                auth_require_tls=False),  # aiosmtpd cannot tell implicit TLS is on
    }
    for s in made.values():
        s.start()
    yield made
    for s in made.values():
        s.stop()


def gw(name: str, port: int, encryption: str = "none", ca_file=None, password: str | None = None) -> dict:
    entry = {"name": name, "address": "127.0.0.1", "port": port, "encryption": encryption}
    if ca_file:
        entry["ca_file"] = str(ca_file)
    if password is not None:
        entry.update(auth_username=USER, auth_password=password)
    return entry


def verify(entry: dict):
    return asyncio.run(verify_gateway(OutboundGateway.model_validate(entry),
                                      DeliveryConfig(helo_name="gw.test", connect_timeout_s=10)))


# --- verify connection before save -------------------------------------------------------------------------------

def test_verify_refused_connection_names_the_connect_step():
    r = verify(gw("nobody", free_port()))
    assert not r.ok and r.step == "connect" and r.error == "ConnectFailed"
    assert "refused" in r.message.lower() or "111" in r.message


def test_verify_tls_required_but_not_offered(servers, ca):
    r = verify(gw("plain", servers["plain"].port, "tls", ca[1]))
    assert not r.ok and r.step == "starttls" and r.error == "TlsFailed"
    assert "STARTTLS required but not offered" in r.message


def test_verify_untrusted_certificate_is_a_tls_failure(servers):
    r = verify(gw("starttls", servers["starttls"].port, "tls", None, PASSWORD))  # system CAs do not know trustme's
    assert not r.ok and r.step == "starttls" and r.error == "TlsFailed" and "certificate" in r.message.lower()


def test_verify_wrong_password_is_an_auth_failure_without_the_password(servers, ca):
    r = verify(gw("starttls", servers["starttls"].port, "tls", ca[1], "wrong-" + PASSWORD))
    assert not r.ok and r.step == "auth" and r.error == "AuthFailed"
    assert "535" in r.message and USER in r.message
    assert PASSWORD not in repr(r) and "wrong-" not in repr(r)


def test_verify_success_with_starttls_and_auth_and_with_implicit_tls(servers, ca):
    r = verify(gw("starttls", servers["starttls"].port, "tls", ca[1], PASSWORD))
    assert r.ok and r.step is None and r.tls_version and r.tls_version.startswith("TLS"), r
    assert f"authenticated as {USER}" in r.message
    r = verify(gw("implicit", servers["implicit"].port, "ssl", ca[1], PASSWORD))
    assert r.ok and r.tls_version, r
    assert not servers["starttls"].messages and not servers["implicit"].messages  # verify sends no mail


def test_verify_cli_reports_each_gateway_and_exits_nonzero_on_failure(servers, ca, tmp_path):
    cfg = {"outbound_gateways": [gw("good", servers["starttls"].port, "tls", ca[1], PASSWORD),
                                 gw("badpw", servers["starttls"].port, "tls", ca[1], "nope-" + PASSWORD)],
           "delivery": {"helo_name": "gw.test"}}
    path = tmp_path / "mailgate.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def cli(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "gateway", "verify", name, "--config", str(path)],
                              capture_output=True, text=True, cwd=str(ROOT), timeout=60)

    good = cli("good")
    assert good.returncode == 0, good.stderr
    assert "good: ok" in good.stdout and "authenticated as relayuser" in good.stdout
    bad = cli("badpw")
    assert bad.returncode == 1
    assert "badpw: FAILED at auth [AuthFailed]" in bad.stdout and PASSWORD not in bad.stdout + bad.stderr
    unknown = cli("nosuch")
    assert unknown.returncode == 2 and "no outbound gateway named 'nosuch'" in unknown.stderr


# --- delivery through the whole pipeline ----------------------------------------------------------------------------

def relay(gateways: list[dict]) -> dict:
    return {"ingress": {"relay_networks": ["127.0.0.1"]}, "outbound_gateways": gateways}


def send(port: int, n: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        s.rcpt(f"bob{n}@far.test")
        code, reply = s.data(f"Subject: tls {n}\r\n\r\nsecret body {n}\r\n".encode())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]


def of_type(events, name: str) -> list:
    return [e for e in events if type(e).__name__ == name]


def test_tls_required_against_server_without_starttls_defers_and_sends_nothing_in_clear(servers, ca, gateway):
    gateway.configure(relay([gw("plain", servers["plain"].port, "tls", ca[1])]))
    gateway.start_broker()
    gateway.start_all()
    mid = send(gateway.smtp_port, 1)
    gateway.wait_events(mid, "DeliveryDeferred")
    attempted = of_type(gateway.events(mid), "DeliveryAttempted")[0]
    assert attempted.error == "starttls: STARTTLS required but not offered by the server"
    assert attempted.results == [] and attempted.tls_version is None
    assert servers["plain"].messages == []  # nothing reached the server in plain text
    assert "TlsFailed" not in attempted.error  # a reason, not a class name


def test_starttls_with_auth_and_implicit_tls_deliver(servers, ca, gateway):
    gateway.configure(relay([
        gw("starttls", servers["starttls"].port, "tls", ca[1], PASSWORD),
        gw("implicit", servers["implicit"].port, "ssl", ca[1], PASSWORD)]))
    gateway.start_broker()
    gateway.start_all()
    ids = [send(gateway.smtp_port, n) for n in range(4)]
    servers["starttls"].wait_for(2)
    servers["implicit"].wait_for(2)
    for mid in ids:
        gateway.wait_events(mid, "MessageDelivered")
        attempted = of_type(gateway.events(mid), "DeliveryAttempted")[0]
        assert attempted.tls_version and attempted.tls_version.startswith("TLS") and attempted.error is None


def test_wrong_password_gives_a_clear_error_and_the_password_is_in_no_log_or_event(servers, ca, gateway):
    wrong = "Wr0ng-" + PASSWORD
    gateway.configure(relay([gw("starttls", servers["starttls"].port, "tls", ca[1], wrong)]))
    gateway.start_broker()
    gateway.start_all()
    mid = send(gateway.smtp_port, 1)
    gateway.wait_events(mid, "DeliveryDeferred")
    attempted = of_type(gateway.events(mid), "DeliveryAttempted")[0]
    assert attempted.error.startswith(f"auth: 127.0.0.1:{servers['starttls'].port} refused AUTH for {USER}: 535")
    assert servers["starttls"].messages == []
    raw = subprocess.run(["kcat", "-C", "-b", f"127.0.0.1:{gateway.kafka_port}", "-t", "mail.events", "-e", "-q",
                          "-f", "%k %s\n"], capture_output=True, timeout=60).stdout
    assert mid.encode() in raw  # kcat read the audit log
    for secret in (wrong, PASSWORD):
        assert secret.encode() not in raw
        assert secret not in gateway.logs()
    assert wrong not in repr(gateway.events())
