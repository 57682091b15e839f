"""Domain verification `web_service` (SmarterMail gateway mode) through the real broker and the SmarterMail test
server: a domain the server reports is accepted and delivered, one it does not is refused 554 at RCPT, a domain added
on the server is accepted after `mailgate cache purge` and, without one, once the cached list ages; the server down
after one good fetch keeps the stale list; down from the start answers 451. The decision and its source are in
MessageReceived / RecipientRejected, and ingress's fresh list serves the processor's re-check (one fetch); a stale
or aged list is decided again by the processor, which drops a domain no longer listed (with a DSN). The lookups
and fetches are counted on ingress's and the processor's /metrics, `mailgate trace` shows the decision fields, and
`mailgate config apply` switches a running gateway to web_service without a restart."""
from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time

import pytest
import yaml

from mailgate.core.config_events import config_version, effective_config, read_state
from mailgate.core.secrets import new_key
from tests.scenario.test_observability import scrape, total, wait_ready
from tests.support.harness import ROOT, _wait_line, free_port, wait_logged
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


def cli(gateway, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def purge(gateway, target: str) -> None:
    cli(gateway, "cache", "purge", target)


def metrics_ports() -> dict[str, int]:
    return {"ingress": free_port(), "processor": free_port()}


def metrics_config(ports: dict[str, int]) -> dict:
    return {"metrics": {f"{stage}_port": port for stage, port in ports.items()}}


def lookups(port: int, gateway: str = "fwd") -> dict[str, float]:
    """mailgate_domain_list_lookups by result, and mailgate_domain_list_requests as "requests", from a real scrape."""
    samples = scrape(port)
    assert any(n == "mailgate_domain_list_lookups_total" for n, _ in samples), "no domain list metrics"
    out = {r: total(samples, "mailgate_domain_list_lookups_total", gateway=gateway, result=r)
           for r in ("hit", "miss", "stale")}
    out["requests"] = total(samples, "mailgate_domain_list_requests_total", gateway=gateway)
    return out


def routed(gateway, rcpt: str, timeout_s: float = 90):
    """The MessageReceived of the one message to `rcpt`, once the processor routed it."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = gateway.events()
        received = [e for e in of_type(events, "MessageReceived") if e.rcpt_to == [rcpt]]
        ids = {e.message_id for e in of_type(events, "MessageRouted")}
        if received and received[0].message_id in ids:
            return received[0]
        assert time.monotonic() < deadline, f"no MessageRouted for <{rcpt}> within {timeout_s}s"
        time.sleep(0.5)


def test_reported_domain_delivered_unreported_refused_and_a_new_one_accepted_after_a_purge(gateway, primary, api):
    ports = metrics_ports()
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, primary.port)], **metrics_config(ports)})
    gateway.start_broker()
    gateway.start_all()
    for port in ports.values():
        wait_ready(port)

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
    gateway.wait_events(reply.rsplit(" ", 1)[1], "MessageDelivered", timeout_s=120)
    # Two fetches (the first lookup and the one after the purge) and two lookups from the fresh list, on ingress;
    # the processor kept ingress's fresh decisions: no lookup, no fetch, but the gateway's counters are there.
    assert lookups(ports["ingress"]) == {"hit": 2, "miss": 2, "stale": 0, "requests": 2}
    assert lookups(ports["processor"]) == {"hit": 0, "miss": 0, "stale": 0, "requests": 0}


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
    ports = metrics_ports()
    gateway.configure({"inbound_gateways": [gateway_entry(api.url, 25, ttl_s=2)], **metrics_config(ports)})
    gateway.start_broker()
    gateway.start("processor")  # no egress: MessageRouted is the processor's "kept"
    gateway.start("ingress")
    wait_ready(ports["processor"])
    assert send(gateway.smtp_port, "bob@example.test")[0] == 250
    routed(gateway, "bob@example.test")
    api.down = True
    before = lookups(ports["processor"])
    time.sleep(2.5)  # past the 2 s TTL: the list is stale
    code, reply = send(gateway.smtp_port, "carol@example.test")
    assert code == 250, reply
    code, reply = send(gateway.smtp_port, "someone@elsewhere.test")
    assert code == 554, reply  # the stale list still refuses what it does not hold
    received = [e for e in of_type(gateway.events(), "MessageReceived") if e.rcpt_to == ["carol@example.test"]]
    assert len(received) == 1 and received[0].domain_list_stale is True
    ingress = lookups(ports["ingress"])
    assert ingress["stale"] == 2 and ingress["requests"] >= 2, ingress  # carol's and elsewhere's lookups

    # The processor does not take a stale list's decision: it decides carol's domain again (one lookup in its own
    # cache), and with no fresh list to be had (the server is down) it keeps the recipient.
    routed(gateway, "carol@example.test")
    after = lookups(ports["processor"])
    assert sum(after[r] for r in ("hit", "miss", "stale")) - sum(before[r] for r in ("hit", "miss", "stale")) == 1
    assert not of_type(gateway.events(received[0].message_id), "RecipientRejected")


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


def live_version(gateway) -> str:
    import asyncio
    state, _ = asyncio.run(read_state(gateway.cfg))
    return config_version(effective_config(gateway.cfg, state))


def test_config_apply_switches_to_web_service_live_and_the_processor_drops_a_domain_no_longer_listed(
        gateway, primary, api, monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())  # mail.config keeps the SmarterMail password sealed
    api.domains.append("served.test")
    ports = metrics_ports()
    listed = {"name": "fwd", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
              "primary_port": primary.port,
              "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}
    gateway.configure({"inbound_gateways": [listed], **metrics_config(ports)})
    gateway.start_broker()
    gateway.start_all()
    for port in ports.values():
        wait_ready(port)
    pids = {stage: [p.pid for p in procs] for stage, procs in gateway.procs.items()}
    assert send(gateway.smtp_port, "bob@served.test")[0] == 554  # specified_domains: only example.test

    # 1. Live: `mailgate config apply` switches the running gateway to web_service (a 2 s list TTL).
    desired = yaml.safe_load(gateway.config_path.read_text())
    desired["inbound_gateways"] = [gateway_entry(api.url, primary.port, ttl_s=2)]
    path = gateway.workdir / "desired.yaml"
    path.write_text(yaml.safe_dump(desired))
    cli(gateway, "config", "apply", str(path), "--operator", "dana")
    wait_logged(gateway, f"configuration version {live_version(gateway)} applied", stages=("ingress", "processor"))
    code, reply = send(gateway.smtp_port, "bob@served.test")
    assert code == 250, reply
    mid = reply.rsplit(" ", 1)[1]
    gateway.wait_events(mid, "MessageDelivered", timeout_s=120)
    assert primary.messages[-1].rcpt_tos == ["bob@served.test"]
    assert {stage: [p.pid for p in procs] for stage, procs in gateway.procs.items()} == pids
    assert all(p.poll() is None for procs in gateway.procs.values() for p in procs)  # no restart
    received = of_type(gateway.events(mid), "MessageReceived")[0]
    assert (received.domain_decision, received.domain_source) == ("accepted", "web_service")

    # 2. The server stops reporting served.test; once ingress's list (and any the processor fetched) is older than
    # the TTL, a replay of mail.received is decided again by the processor: the recipient is dropped, with a DSN.
    api.domains.remove("served.test")
    time.sleep(2.5)
    before = lookups(ports["processor"])
    cli(gateway, "replay", "--topic", "mail.received", "--since", "10m", "--message-id", mid,
        "--reason", "served.test removed")
    deadline = time.monotonic() + 90
    while not (rejected := of_type(gateway.events(mid), "RecipientRejected")):
        assert time.monotonic() < deadline, gateway.event_types(mid)
        time.sleep(0.5)
    r = rejected[0]
    assert (r.recipient, r.stage, r.reason, r.reply_code, r.enhanced_code) == (
        "bob@served.test", "processor", "domain_not_accepted", 554, "5.7.1")
    assert (r.domain_decision, r.domain_source, r.domain_list_stale) == ("refused", "web_service", False)
    assert r.domain_list_fetched_at is not None and r.domain_list_fetched_at > received.domain_list_fetched_at
    gateway.wait_events(mid, "MessageDiscarded", timeout_s=60)
    deadline = time.monotonic() + 60
    while not (dsns := [e for e in of_type(gateway.events(), "MessageReceived")
                        if e.mail_from == "" and e.rcpt_to == ["alice@sender.test"]]):
        assert time.monotonic() < deadline, "no DSN to the sender"
        time.sleep(0.5)
    assert len(dsns) == 1 and dsns[0].direction == "outbound"  # the DSN to the (non-null) sender
    after = lookups(ports["processor"])
    assert after["miss"] - before["miss"] == 1 and after["requests"] - before["requests"] == 1
    assert len(primary.messages) == 1  # the replay delivered nothing

    # 3. `mailgate trace`: the decision fields of MessageReceived (ingress) and RecipientRejected (processor).
    text = cli(gateway, "trace", mid).stdout
    line = next(ln for ln in text.splitlines() if "MessageReceived" in ln)
    assert "domain_decision=accepted" in line and "domain_source=web_service" in line
    assert "domain_list_fetched_at=" in line
    line = next(ln for ln in text.splitlines() if "RecipientRejected" in ln)
    assert "reason=domain_not_accepted" in line and "domain_decision=refused" in line
    assert "domain_source=web_service" in line and "domain_list_fetched_at=" in line
    events = [json.loads(ln) for ln in cli(gateway, "trace", mid, "--json").stdout.splitlines() if ln.strip()]
    fields = ("domain_decision", "domain_source", "domain_list_fetched_at", "domain_list_stale")
    by_type = {e["type"]: {k: e[k] for k in fields} for e in events
               if e["type"] in ("MessageReceived", "RecipientRejected")}
    assert by_type == {
        "MessageReceived": {"domain_decision": "accepted", "domain_source": "web_service",
                            "domain_list_fetched_at": received.domain_list_fetched_at, "domain_list_stale": False},
        "RecipientRejected": {"domain_decision": "refused", "domain_source": "web_service",
                              "domain_list_fetched_at": r.domain_list_fetched_at, "domain_list_stale": False}}
