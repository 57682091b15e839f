"""Domain verification `web_service` (SmarterMail gateway mode) through the real broker and the SmarterMail test
server: a domain the server reports is accepted and delivered, one it does not is refused 554 at RCPT, a domain added
on the server is accepted after `mailgate cache purge` and, without one, once the cached list ages; the server down
after one good fetch keeps the stale list; down from the start answers 451. The decision and its source are in
MessageReceived / RecipientRejected, and ingress's fresh list serves the processor's re-check (one fetch)."""
from __future__ import annotations

import smtplib
import subprocess
import sys
import time

import pytest

from tests.support.harness import ROOT, _wait_line
from tests.support.secrets import SMARTERMAIL_PASSWORD as PASSWORD
from tests.support.smartermail_api import SmarterMailAPI

pytestmark = pytest.mark.scenario

MESSAGE = b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def api():
    with SmarterMailAPI(users=set(), domains=["example.test"], password=PASSWORD) as a:
        yield a


def gateway_entry(api_url: str, primary_port: int, *, ttl_s: int = 600, domains: list[str] | None = None) -> dict:
    return {"name": "fwd", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
            "domain_verification": {"mode": "web_service", "domains": domains or []},
            "smartermail": {"enabled": True, "url": api_url, "username": "admin", "password": PASSWORD,
                            "cache_ttl_s": ttl_s}}


def send(port: int, rcpt: str) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg.decode()
        code, msg = s.data(MESSAGE)
        return code, msg.decode()


def of_type(events: list, name: str) -> list:
    return [e for e in events if type(e).__name__ == name]


def purge(gateway, target: str) -> None:
    out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "cache", "purge", target,
                          "--config", str(gateway.config_path)], cwd=str(ROOT), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_reported_domain_delivered_unreported_refused_and_a_new_one_accepted_after_a_purge(gateway, primary, api):
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, primary.port)]})
    gateway.start_broker()
    gateway.start_all()

    code, reply = send(gateway.smtp_port, "bob@example.test")
    assert code == 250, reply
    mid = reply.rsplit(" ", 1)[1]
    assert primary.wait_for(1)[0].rcpt_tos == ["bob@example.test"]
    gateway.wait_events(mid, "MessageDelivered", timeout_s=120)
    received = of_type(gateway.events(mid), "MessageReceived")[0]
    assert (received.domain_decision, received.domain_source, received.domain_list_stale) == (
        "accepted", "web_service", False)
    assert received.domain_list_fetched_at is not None
    assert api.calls["domain-names"] == 1  # the processor took ingress's fresh list instead of fetching its own

    code, reply = send(gateway.smtp_port, "someone@elsewhere.test")
    assert code == 554 and reply.startswith("5.7.1 "), reply
    api.domains.append("new.test")
    code, reply = send(gateway.smtp_port, "bob@new.test")
    assert code == 554, reply  # the cached list does not have it yet
    rejected = of_type(gateway.events(), "RecipientRejected")
    assert {(e.recipient, e.reason, e.domain_decision, e.domain_source) for e in rejected} == {
        ("someone@elsewhere.test", "relay_denied", "refused", "web_service"),
        ("bob@new.test", "relay_denied", "refused", "web_service")}

    for stage in ("ingress", "processor"):
        _wait_line(gateway.workdir / f"{stage}-0.log", f"{stage} following cache purges", gateway.procs[stage][0])
    purge(gateway, "new.test")
    for stage in ("ingress", "processor"):
        _wait_line(gateway.workdir / f"{stage}-0.log", f"{stage} applied cache purge", gateway.procs[stage][0])
    code, reply = send(gateway.smtp_port, "bob@new.test")
    assert code == 250, reply
    assert primary.wait_for(2)[1].rcpt_tos == ["bob@new.test"]
    assert api.calls["domain-names"] == 2


def test_a_domain_added_on_the_server_is_accepted_once_the_cached_list_ages(gateway, api):
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, 25, ttl_s=2)]})
    gateway.start_broker()
    gateway.start("ingress")
    assert send(gateway.smtp_port, "bob@example.test")[0] == 250
    fetched = time.monotonic()
    api.domains.append("later.test")
    assert send(gateway.smtp_port, "bob@later.test")[0] == 554
    deadline = fetched + 60
    while send(gateway.smtp_port, "bob@later.test")[0] != 250:  # no fixed sleep: until the list is fetched again
        assert time.monotonic() < deadline, "the cached domain list never aged"
        time.sleep(0.2)
    assert time.monotonic() - fetched >= 1.5  # not before the refresh-ahead point (the last fifth of 2 s)
    assert api.calls["domain-names"] >= 2


def test_server_down_after_one_good_fetch_keeps_accepting_from_the_stale_list(gateway, api):
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, 25, ttl_s=2)]})
    gateway.start_broker()
    gateway.start("ingress")
    assert send(gateway.smtp_port, "bob@example.test")[0] == 250
    api.down = True
    time.sleep(2.5)  # past the 2 s TTL: the list is stale
    code, reply = send(gateway.smtp_port, "carol@example.test")
    assert code == 250, reply
    code, reply = send(gateway.smtp_port, "someone@elsewhere.test")
    assert code == 554, reply  # the stale list still refuses what it does not hold
    received = [e for e in of_type(gateway.events(), "MessageReceived") if e.rcpt_to == ["carol@example.test"]]
    assert len(received) == 1 and received[0].domain_list_stale is True


def test_server_down_from_the_start_tempfails_what_the_lists_do_not_decide(gateway, api):
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, 25, domains=["listed.test"])]})
    api.down = True
    gateway.start_broker()
    gateway.start("ingress")
    code, reply = send(gateway.smtp_port, "bob@example.test")
    assert code == 451 and reply.startswith("4.4.3 "), reply
    assert send(gateway.smtp_port, "bob@listed.test")[0] == 250  # the configured addition needs no list
    rejected = of_type(gateway.events(), "RecipientRejected")
    assert [(e.reason, e.reply_code, e.domain_decision, e.domain_source) for e in rejected] == [
        ("domain_list_unavailable", 451, "unavailable", "web_service")]
    api.down = False
    deadline = time.monotonic() + 60
    while send(gateway.smtp_port, "bob@example.test")[0] != 250:  # asked again after the 30 s retry interval
        assert time.monotonic() < deadline
        time.sleep(1)
