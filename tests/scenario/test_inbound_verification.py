"""Domain Forward / Backup MX user verification at RCPT against a real SmarterMail-API server, through the real
broker: known users delivered, unknown users refused with 550 5.1.1 and never queued, foreign domains 554 5.7.1,
one web-service call per cached address, TTL expiry, `mailgate cache purge`, and the directory going down."""
from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import time

import pytest

from mailgate.core import kafka, topics
from tests.support.harness import ROOT, _wait_line
from tests.support.harness import send_marker
from tests.support.smartermail_api import SmarterMailAPI

pytestmark = pytest.mark.scenario

from tests.support.secrets import SMARTERMAIL_PASSWORD as PASSWORD
MESSAGE = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def api():
    with SmarterMailAPI(users={"bob@example.test", "carol@example.test", "dave@backup.test", "erin@other.test"},
                        domains=["example.test", "backup.test", "other.test"], password=PASSWORD) as a:
        yield a


def gateway_entry(name: str, mode: str, domains: list[str], api_url: str, primary_port: int, *,
                  domain_mode: str = "specified_domains", ttl_s: int = 600) -> dict:
    return {"name": name, "mode": mode, "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
            "smtp_user_verification": True,
            "domain_verification": {"mode": domain_mode, "domains": domains},
            "smartermail": {"enabled": True, "url": api_url, "username": "admin", "password": PASSWORD,
                            "user_verification": "web_service", "cache_ttl_s": ttl_s}}


class Client:
    """Sends test mail and remembers every SMTP reply, so none can be checked for the password."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replies: list[str] = []

    def send(self, rcpts: list[str] | str, sender: str = "alice@sender.test") -> tuple[int, str]:
        rcpts = [rcpts] if isinstance(rcpts, str) else rcpts
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as s:
            s.ehlo("client.test")
            s.mail(sender)
            accepted = 0
            for r in rcpts:
                code, msg = s.rcpt(r)
                self.replies.append(msg.decode())
                if code != 250:
                    last = (code, msg.decode())
                else:
                    accepted += 1
            if not accepted:
                return last
            code, msg = s.data(MESSAGE)
            self.replies.append(msg.decode())
            return code, msg.decode()


def records_in(cfg, topic: str) -> int:
    async def count() -> int:
        c = kafka.consumer(cfg, "test-count", None)
        await c.start()
        try:
            tps = await kafka.assign_whole_topic(c, topic)
            return sum((await c.end_offsets(tps)).values())
        finally:
            await c.stop()
    return asyncio.run(count())


def assert_password_never_shown(gateway, client: Client) -> None:
    assert PASSWORD not in gateway.logs()
    assert not [e for e in gateway.events() if PASSWORD in repr(e)]
    assert not [r for r in client.replies if PASSWORD in r]


def wait_calls(api: SmarterMailAPI, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while api.calls["get-user"] < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.calls["get-user"] == n, api.calls


def test_known_user_delivered_unknown_user_refused_at_rcpt_and_foreign_domain_denied(gateway, primary, api):
    gateway.configure({"inbound_gateways": [
        gateway_entry("fwd", "domain_forward", ["example.test"], api.url, primary.port)]})
    gateway.start_broker()
    gateway.start_all()
    client = Client(gateway.smtp_port)

    code, reply = client.send("bob@example.test")
    assert code == 250, reply
    got = primary.wait_for(1)
    assert got[0].rcpt_tos == ["bob@example.test"]

    code, reply = client.send("nobody@example.test")
    assert (code, reply) == (550, "5.1.1 <nobody@example.test>: Recipient address rejected: User unknown")
    code, reply = client.send("someone@elsewhere.test")
    assert code == 554 and reply.startswith("5.7.1 "), reply

    assert records_in(gateway.cfg, topics.RECEIVED) == 1  # only bob's message was queued
    rejected = [e for e in gateway.events() if type(e).__name__ == "RecipientRejected"]
    assert {(e.recipient, e.reason, e.stage) for e in rejected} == {
        ("nobody@example.test", "user_unknown", "ingress"), ("someone@elsewhere.test", "relay_denied", "ingress")}
    verified = {(e.recipient, e.stage) for e in gateway.events() if type(e).__name__ == "RecipientVerified"}
    assert verified == {("bob@example.test", "ingress"), ("bob@example.test", "processor")}
    assert_password_never_shown(gateway, client)


def test_all_but_specified_domains_inverts_the_domain_list(gateway, api):
    gateway.configure({"inbound_gateways": [
        gateway_entry("fwd", "domain_forward", ["example.test"], api.url, 25,
                      domain_mode="all_but_specified_domains")]})
    gateway.start_broker()
    gateway.start("ingress")
    client = Client(gateway.smtp_port)

    code, reply = client.send("bob@example.test")
    assert code == 554 and reply.startswith("5.7.1 "), reply
    assert client.send("erin@other.test")[0] == 250
    code, reply = client.send("nobody@other.test")
    assert code == 550 and reply.startswith("5.1.1 "), reply
    assert_password_never_shown(gateway, client)


def test_fifty_messages_make_one_lookup_and_cache_purge_asks_again(gateway, primary, api):
    gateway.configure({"inbound_gateways": [
        gateway_entry("fwd", "domain_forward", ["example.test"], api.url, primary.port)]})
    gateway.start_broker()
    gateway.start_all()
    client = Client(gateway.smtp_port)

    for _ in range(50):
        code, reply = client.send("bob@example.test")
        assert code == 250, reply
    primary.wait_for(50, timeout_s=120)
    # One get-user call: ingress asks and caches; the processor takes ingress's fresh answer from the record
    # (MessageReceived.verified_recipients) as a cached one instead of asking again.
    # A second call, if any, would come from the processor handling those 50: a marker delivered after them
    # (to another, not yet cached, recipient) shows they were all handled.
    marker = send_marker(gateway.smtp_port, "carol@example.test")
    gateway.wait_events(marker, "MessageDelivered", timeout_s=120)
    wait_calls(api, 2)  # bob once (50 messages), carol once (the marker)
    print(f"\nweb-service get-user calls for 50 messages to one recipient: {api.calls['get-user'] - 1}")

    for stage in ("ingress", "processor"):
        _wait_line(gateway.workdir / f"{stage}-0.log", f"{stage} following cache purges", gateway.procs[stage][0])
    out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "cache", "purge", "example.test",
                          "--config", str(gateway.config_path)], cwd=str(ROOT), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for stage in ("ingress", "processor"):
        _wait_line(gateway.workdir / f"{stage}-0.log", f"{stage} applied cache purge", gateway.procs[stage][0])

    assert client.send("bob@example.test")[0] == 250
    primary.wait_for(52, timeout_s=60)
    wait_calls(api, 3)  # the purge made ingress ask again; the processor again used its answer
    assert_password_never_shown(gateway, client)


def test_cache_entry_expires_after_ttl(gateway, api):
    gateway.configure({"inbound_gateways": [
        gateway_entry("fwd", "domain_forward", ["example.test"], api.url, 25, ttl_s=2)]})
    gateway.start_broker()
    gateway.start("ingress")
    client = Client(gateway.smtp_port)

    asked_at = time.monotonic()  # before the first send: the lookup (and so its TTL) starts after this
    assert client.send("bob@example.test")[0] == 250
    assert client.send("bob@example.test")[0] == 250
    assert api.calls["get-user"] == 1
    deadline = asked_at + 60
    while api.calls["get-user"] < 2:  # no fixed sleep: keep sending until the directory is asked again
        assert time.monotonic() < deadline, "the cache entry never expired"
        assert client.send("bob@example.test")[0] == 250
    assert time.monotonic() - asked_at >= 2.0  # not before the 2 s TTL
    assert api.calls["get-user"] == 2


def test_directory_down_cached_accepted_uncached_tempfails_for_forward_and_is_accepted_by_backup_mx(gateway, api):
    gateway.configure({"inbound_gateways": [
        gateway_entry("fwd", "domain_forward", ["example.test"], api.url, 25),
        gateway_entry("bmx", "backup_mx", ["backup.test"], api.url, 25)]})
    gateway.start_broker()
    gateway.start("ingress")
    client = Client(gateway.smtp_port)
    assert client.send("bob@example.test")[0] == 250

    api.down = True
    assert client.send("bob@example.test")[0] == 250  # cached
    code, reply = client.send("carol@example.test")
    assert code == 451 and reply.startswith("4.4.3 "), reply
    assert client.send("dave@backup.test")[0] == 250  # Backup MX accepts what it cannot verify
    assert client.send("unknown@backup.test")[0] == 250
    api.down_mode = "close"
    code, reply = client.send("carol@example.test")
    assert code == 451 and reply.startswith("4.4.3 "), reply
    assert_password_never_shown(gateway, client)


def test_an_unrecognised_directory_answer_tempfails_even_at_a_backup_mx_and_is_logged(gateway, api):
    """Regression: Backup MX accepted everything when the directory's wording for an unknown user changed."""
    gateway.configure({"inbound_gateways": [
        gateway_entry("bmx", "backup_mx", ["backup.test"], api.url, 25)]})
    gateway.start_broker()
    gateway.start("ingress")
    client = Client(gateway.smtp_port)
    assert client.send("dave@backup.test")[0] == 250
    api.unknown_user_message = "The user was not found"
    code, reply = client.send("unknown@backup.test")
    assert code == 451 and reply.startswith("4.4.3 "), reply
    logs = gateway.logs()
    assert "unrecognised answer, HTTP 200" in logs and "The user was not found" in logs
    assert api.calls["alias"] == 0
    assert_password_never_shown(gateway, client)
