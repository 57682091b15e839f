"""The first line of defense at the SMTP door (issue 32): postscreen's pre-greet test, weighted DNS block and allow
lists, every refusal audited and searchable, bare LF from a relay network repaired.

One real broker, the processor, egress, the tracker, a recording primary and outbound gateway, and two ingress
processes: `main` (pre-greet `drop` on its main listener, `enforce` on a second listener; DNS lists refused at RCPT)
and `connect` (DNS lists refused at connect with 521). The lists are real DNS zones served by dnsmasq on loopback:
clients connect from their own 127.0.0.x source addresses, each listed as the table below says.
"""
from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mailgate.core import topics
from mailgate.ops.audit.reader import read_topic
from tests.scenario.test_observability import scrape, total
from tests.support.dns_server import DnsServer, SilentDns
from tests.support.harness import ROOT, Gateway, SmtpPrimary, _wait_line, free_port

pytestmark = pytest.mark.scenario

GREET_WAIT_S = 1.5
LISTED = {  # client -> the lists that list it (bl.test*2, bl2.test*2, wl.test*-5; threshold 3)
    "127.0.0.2": ("bl.test", "bl2.test"),            # 4: refused, naming bl.test
    "127.0.0.3": ("bl.test", "bl2.test", "wl.test"),  # -1: the allow list outweighs two block lists
    "127.0.0.4": ("bl.test",),                        # 2: under the threshold, scored as spam
    "127.0.0.9": ("bl.test", "bl2.test"),            # a relay network: never asked
}
SITES = ["bl.test*2", "bl2.test=127.0.0.[2..11]*2", "wl.test*-5", "world.test*3", "slow.test*3"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    silent = SilentDns()
    hosts = {f"{c.split('.')[3]}.0.0.127.{zone}": ["127.0.0.2"] for c, zones in LISTED.items() for zone in zones}
    dns = DnsServer({}, hosts=hosts, wildcards={"world.test": "127.0.0.2"}, forward={"slow.test": silent.port})
    dns.start()
    primary, outbound = SmtpPrimary().start(), SmtpPrimary().start()
    g = Gateway(tmp_path_factory.mktemp("door"))
    g.primary, g.outbound, g.enforce_port, g.connect_port = primary, outbound, free_port(), free_port()
    g.ignore_port = free_port()
    g.metrics_port = free_port()
    g.configure({
        "ingress": {"relay_networks": ["127.0.0.9"],
                    "pregreet": {"action": "drop", "greet_wait_s": GREET_WAIT_S},
                    "dnsbl": {"sites": SITES, "threshold": 3, "timeout_s": 1.0,
                              "dns": {"nameservers": ["127.0.0.1"], "port": dns.port, "timeout_s": 1.0}},
                    "listeners": [{"name": "enforce", "port": g.enforce_port, "tls_mode": "none", "auth": False,
                                   "pregreet": "enforce"},
                                  {"name": "ignore", "port": g.ignore_port, "tls_mode": "none", "auth": False,
                                   "pregreet": "ignore"}]},
        "metrics": {"ingress_port": g.metrics_port},
        "spam": {"enabled": True, "scorers": [], "dnsbl_weight": 1.5},
        "inbound_gateways": [{"name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                              "primary_port": primary.port,
                              "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}],
        "outbound_gateways": [{"name": "out", "address": "127.0.0.1", "port": outbound.port}],
    })
    g.start_broker()
    try:
        g.start_all()
        data = yaml.safe_load(g.config_path.read_text())  # a second ingress: the lists refuse at connect
        data["ingress"].update({"listen_port": g.connect_port, "listeners": [], "pregreet": {"action": "off"}})
        data["ingress"]["dnsbl"]["action"] = "connect"
        data["metrics"]["ingress_port"] = 0
        main_config, g.config_path = g.config_path, Path(g.workdir / "connect.yaml")
        g.config_path.write_text(yaml.safe_dump(data))
        g.start("ingress")
        g.config_path = main_config
        tracker = g.start("tracker", wait=False)
        _wait_line(g.workdir / "tracker-0.log", "tracker consuming", tracker)
        yield g
    finally:
        g.stop_all()
        g.stop_broker()
        primary.stop()
        outbound.stop()
        dns.stop()
        silent.close()


class Raw:
    """A client that sends exactly the bytes it is given, from its own source address."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def reply(self) -> str:
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def send(port: int, source: str, rcpt: str = "bob@example.test", body: bytes = b"Subject: hi\r\n\r\nhello\r\n",
         sender: str = "alice@sender.test") -> tuple[int, str, float]:
    """One message with smtplib (it waits for the whole greeting): (RCPT or DATA code, its text, seconds to greet)."""
    began = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
        greeted = time.monotonic() - began
        c.ehlo("client.test")
        c.mail(sender)
        code, text = c.rcpt(rcpt)
        if code != 250:
            return code, text.decode(), greeted
        code, text = c.data(body)
        return code, text.decode(), greeted


def received_from(g: Gateway, client: str) -> list:
    async def scan() -> list:
        return [e async for _, e in read_topic(g.cfg, topics.RECEIVED) if e.client_address == client]
    return asyncio.run(scan())


def events_of(g: Gateway, name: str, client: str, timeout_s: float = 30) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for e in g.events() if type(e).__name__ == name and e.client_address == client]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def search(g: Gateway, *args: str, timeout_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "search", "--json", *args,
                               "--config", str(g.config_path)], cwd=str(ROOT), capture_output=True, text=True,
                              timeout=120)
        rows = json.loads(done.stdout) if done.returncode == 0 else []
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


# pre-greet ---------------------------------------------------------------------------------------------------

def test_a_client_that_speaks_before_the_greeting_is_dropped_and_nothing_reaches_kafka(gw):
    bot = Raw(gw.smtp_port, "127.0.0.5")
    try:
        assert bot.line() == "220-gw.test ESMTP"  # the first line of the greeting; the bot does not wait for more
        bot.sock.sendall(b"EHLO bot.test\r\nMAIL FROM:<bot@spam.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                         b"Subject: spam\r\n\r\nbuy\r\n.\r\nQUIT\r\n")
        assert bot.line() == "521 5.5.1 Protocol error"
        assert bot.file.read() == b""  # closed: none of it was answered
    finally:
        bot.close()
    refused = events_of(gw, "ConnectionRefused", "127.0.0.5")
    assert [(e.check, e.reason, e.reply, e.listener) for e in refused] == [
        ("pregreet", "pregreet", "521 5.5.1 Protocol error", "main")]
    assert received_from(gw, "127.0.0.5") == []
    assert "pregreet client=127.0.0.5 listener=main action=drop sent=" in gw.logs()
    assert total(scrape(gw.metrics_port), "mailgate_ingress_door_checks_total", check="pregreet",
                 result="refused") == 1
    rows = search(gw, "--client", "127.0.0.5")  # `mailgate search --client` shows the refused attempt
    assert [(r["state"], r["last_reply"]) for r in rows] == [("refused", "521 5.5.1 Protocol error")]
    assert refused[0].message_id in [r["message_id"] for r in search(gw, "--state", "refused")]


def test_a_polite_client_waits_for_the_whole_greeting_and_is_then_greeted_at_once(gw):
    code, text, greeted = send(gw.smtp_port, "127.0.0.6")
    assert code == 250, text
    assert greeted >= GREET_WAIT_S * 0.9  # the first time: tested
    code, text, greeted = send(gw.smtp_port, "127.0.0.6")
    assert code == 250, text
    assert greeted < GREET_WAIT_S / 2  # it passed: remembered, not tested again
    samples = scrape(gw.metrics_port)
    assert total(samples, "mailgate_ingress_door_checks_total", check="pregreet", result="cached") >= 1


def test_enforce_lets_a_pre_greeting_client_talk_but_refuses_every_recipient(gw):
    bot = Raw(gw.enforce_port, "127.0.0.7")
    try:
        assert bot.line() == "220-gw.test ESMTP"
        bot.sock.sendall(b"EHLO bot.test\r\n")
        assert bot.reply().startswith("220 gw.test")
        assert bot.reply().startswith("250-gw.test")
        bot.sock.sendall(b"MAIL FROM:<bot@spam.test>\r\n")
        assert bot.reply().startswith("250 ")
        bot.sock.sendall(b"RCPT TO:<bob@example.test>\r\n")
        assert bot.reply() == "550 5.5.1 Protocol error"
    finally:
        bot.close()
    rejected = events_of(gw, "RecipientRejected", "127.0.0.7")
    assert [(e.check, e.reason, e.reply_code, e.enhanced_code) for e in rejected] == [
        ("pregreet", "pregreet", 550, "5.5.1")]


def test_ignore_only_logs_and_counts_a_pre_greeting_client(gw):
    bot = Raw(gw.ignore_port, "127.0.0.10")
    try:
        assert bot.line() == "220-gw.test ESMTP"
        bot.sock.sendall(b"EHLO bot.test\r\n")
        assert bot.reply().startswith("220 gw.test")
        assert bot.reply().startswith("250-gw.test")
        bot.sock.sendall(b"MAIL FROM:<bot@spam.test>\r\nRCPT TO:<bob@example.test>\r\n")
        assert bot.reply().startswith("250 ") and bot.reply().startswith("250 ")
    finally:
        bot.close()
    assert "pregreet client=127.0.0.10 listener=ignore action=ignore" in gw.logs()
    assert total(scrape(gw.metrics_port), "mailgate_ingress_door_checks_total", check="pregreet",
                 result="ignored") == 1


# DNS lists ---------------------------------------------------------------------------------------------------

def test_a_client_on_two_weighted_block_lists_is_refused_at_rcpt_naming_the_list(gw):
    code, text, _ = send(gw.smtp_port, "127.0.0.2")
    assert (code, text) == (550, "5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test")
    rejected = events_of(gw, "RecipientRejected", "127.0.0.2")
    assert [(e.check, e.reason, e.dnsbl_score) for e in rejected] == [("dnsbl", "dnsbl:bl.test", 4)]
    assert received_from(gw, "127.0.0.2") == []
    samples = scrape(gw.metrics_port)
    assert total(samples, "mailgate_ingress_door_checks_total", check="dnsbl", result="over") >= 1
    assert total(samples, "mailgate_ingress_recipients_rejected_total", reason="dnsbl") == 1


def test_an_allow_list_outweighs_block_lists_and_the_score_is_recorded(gw):
    code, text, _ = send(gw.smtp_port, "127.0.0.3")
    assert code == 250, text
    [received] = received_from(gw, "127.0.0.3")
    assert received.dnsbl_score == -1
    assert sorted(received.dnsbl_listings) == ["bl.test*2", "bl2.test*2", "wl.test*-5"]


def test_a_score_under_the_threshold_joins_the_spam_score(gw):
    code, text, _ = send(gw.smtp_port, "127.0.0.4")  # bl.test*2; world.test would add 3 if it were not disabled
    assert code == 250, text
    [received] = received_from(gw, "127.0.0.4")
    assert (received.dnsbl_score, received.dnsbl_listings) == (2, ["bl.test*2"])
    assert total(scrape(gw.metrics_port), "mailgate_ingress_door_checks_total", check="dnsbl", result="listed") >= 1
    deadline = time.monotonic() + 60
    while not (classified := [e for e in gw.events(received.message_id) if type(e).__name__ == "MessageClassified"]):
        assert time.monotonic() < deadline, "no MessageClassified"
        time.sleep(0.5)
    [scored] = [s for s in classified[0].scores if s.scorer == "dnsbl"]
    assert (scored.score, scored.weight, classified[0].total_score) == (2.0, 1.5, 3.0)


def test_the_list_that_lists_the_world_is_disabled_with_a_log_line(gw):
    send(gw.smtp_port, "127.0.0.8")  # any lookup asks each list for 127.0.0.1 first
    assert "dnsbl list world.test disabled: it answers for the RFC 5782 test address 127.0.0.1" in gw.logs()
    assert "dnsbl list bl.test disabled" not in gw.logs()


def test_a_list_that_never_answers_does_not_hold_up_the_session(gw):
    began = time.monotonic()
    code, text, greeted = send(gw.smtp_port, "127.0.0.6")  # greeted at once (passed the pre-greet test)
    assert code == 250, text
    assert time.monotonic() - began < 1.0 + 2.0  # slow.test: its 1 s deadline, never longer


def test_relay_networks_are_not_tested_or_asked_and_their_bare_lf_is_repaired(gw):
    # smtplib sends a bytes message as given: bare LF line endings, as a script on a relay host would
    code, text, greeted = send(gw.smtp_port, "127.0.0.9", rcpt="carol@elsewhere.test",
                               body=b"Subject: from a script\n\nline one\nline two\n")
    assert code == 250, text
    assert greeted < GREET_WAIT_S / 2  # no pre-greet test for a relay network either
    [received] = received_from(gw, "127.0.0.9")
    assert received.dnsbl_score == 0 and received.body_crlf_only
    [delivered] = gw.outbound.wait_for(1)
    assert b"Subject: from a script\r\n\r\nline one\r\nline two\r\n" in delivered.data


def test_the_connect_action_refuses_with_521_instead_of_the_greeting(gw):
    client = Raw(gw.connect_port, "127.0.0.2")
    try:
        assert client.line() == "521 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test"
        assert client.file.read() == b""
    finally:
        client.close()
    refused = events_of(gw, "ConnectionRefused", "127.0.0.2")
    assert [(e.check, e.reason, e.dnsbl_score) for e in refused] == [("dnsbl", "dnsbl:bl.test", 4)]
    code, text, _ = send(gw.connect_port, "127.0.0.3")  # the allow-listed client is greeted and accepted
    assert code == 250, text


# allow and block entries (live) ---------------------------------------------------------------------------------

def mailgate_cli(g: Gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(g.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)


def test_access_entries_apply_live_a_blocked_sender_gets_554_and_an_allowed_client_skips_the_lists(gw):
    for args in (("add", "primary", "sender", "spam@bad.test", "--block"),
                 ("add", "primary", "client", "127.0.0.2", "--allow")):
        done = mailgate_cli(gw, "access", *args, "--operator", "tester")
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while gw.logs().count("configuration change: GatewayConfigured inbound primary by tester") < 4:  # 2 ingress
        assert time.monotonic() < deadline, "the ingress processes did not apply the access entries"
        time.sleep(0.3)
    code, text, _ = send(gw.smtp_port, "127.0.0.11", sender="spam@bad.test")
    assert (code, text) == (554, "5.7.1 <spam@bad.test>: Sender address rejected: Access denied")
    [rejected] = events_of(gw, "RecipientRejected", "127.0.0.11")
    assert (rejected.check, rejected.reason) == ("access", "access:sender")
    code, text, _ = send(gw.smtp_port, "127.0.0.2")  # listed with 4 >= 3, but allowed for this gateway
    assert code == 250, text
    listed = json.loads(mailgate_cli(gw, "access", "list", "primary", "--json").stdout)
    assert [(r["action"], r["kind"], r["value"]) for r in listed] == [
        ("block", "sender", "spam@bad.test"), ("allow", "client", "127.0.0.2")]
    history = mailgate_cli(gw, "config", "history").stdout
    assert history.count("tester") >= 2  # each change is an audited record naming its operator
    bad = mailgate_cli(gw, "access", "add", "nosuch", "client", "127.0.0.1", "--block")
    assert (bad.returncode, bad.stderr.strip()) == (2, "mailgate access: no inbound gateway named 'nosuch'")
    bad = mailgate_cli(gw, "access", "add", "primary", "client", "not-an-ip", "--block")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    done = mailgate_cli(gw, "access", "remove", "primary", "sender", "spam@bad.test")
    assert done.returncode == 0, done.stderr
    listed = json.loads(mailgate_cli(gw, "access", "list", "--json").stdout)
    assert [(r["action"], r["value"]) for r in listed] == [("allow", "127.0.0.2")]
