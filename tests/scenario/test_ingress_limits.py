"""Ingress limits with Postfix's meanings (issue 14): each limit answered `421 4.7.0` at its edge, logged and counted;
a 200-connection flood from one address does not keep another address from being served; DATA activity resets the
idle timer. Real broker, real ingress processes, real sockets (127.0.0.2 as a second client address).
"""
from __future__ import annotations

import re
import smtplib
import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.scenario.test_observability import scrape, total
from tests.support.harness import Gateway, free_port

pytestmark = pytest.mark.scenario

LIMITS = {"client_message_rate_limit": 5, "max_messages_per_connection": 3}  # connection count: default 50
FAST = {"max_session_s": 5, "idle_timeout_s": 2}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    """One broker, and two ingress processes: the limits above on smtp_port, short timers on `fast_port`."""
    g = Gateway(tmp_path_factory.mktemp("limits"))
    g.metrics_port = free_port()
    g.configure({"ingress": LIMITS, "metrics": {"ingress_port": g.metrics_port}, "inbound_gateways": [{
        "name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": free_port(),
        "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}]})
    g.start_broker()
    try:
        g.start("ingress")
        main_config = g.config_path
        data = yaml.safe_load(main_config.read_text())
        g.fast_port = free_port()
        data["ingress"].update({"listen_port": g.fast_port, **FAST})
        data["metrics"]["ingress_port"] = 0
        g.config_path = Path(g.workdir / "fast.yaml")
        g.config_path.write_text(yaml.safe_dump(data))
        g.start("ingress")
        g.config_path = main_config
        yield g
    finally:
        g.stop_all()
        g.release()


def connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, object]:
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return s, s.makefile("rb")


def command(s: socket.socket, f, line: str) -> bytes:
    s.sendall(line.encode() + b"\r\n")
    reply = f.readline()
    while reply[3:4] == b"-":
        reply = f.readline()
    return reply


def send_message(port: int, source: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
        c.ehlo("client.test")
        c.mail("alice@sender.test")
        c.rcpt("bob@example.test")
        return c.data(b"Subject: served\r\n\r\nstill served\r\n")


def test_flood_from_one_address_gets_421_past_50_connections_while_another_address_is_served(gw):
    socks = []
    try:
        for _ in range(200):
            socks.append(connect(gw.smtp_port))
        greetings = [f.readline() for _, f in socks]
        assert sum(g.startswith(b"220 ") for g in greetings) == 50  # smtpd_client_connection_count_limit
        refused = [g for g in greetings if not g.startswith(b"220 ")]
        assert len(refused) == 150
        assert all(g.startswith(b"421 4.7.0 gw.test Error: too many connections from 127.0.0.1") for g in refused)
        assert send_message(gw.smtp_port, "127.0.0.2")[0] == 250  # another client is served during the flood
    finally:
        for s, f in socks:
            f.close()
            s.close()
    deadline = time.monotonic() + 30  # the slots are given back as the connections close
    while True:
        s, f = connect(gw.smtp_port)
        with s, f:
            if f.readline().startswith(b"220 "):
                break
        assert time.monotonic() < deadline, "connection slots not freed after the flood"
        time.sleep(0.2)
    assert "reason=limit_exceeded limit=connection_count" in gw.logs()
    limited = total(scrape(gw.metrics_port), "mailgate_ingress_limit_exceeded_total", limit="connection_count")
    assert limited >= 150


def test_message_rate_counts_mail_from_over_all_connections_of_a_client(gw):
    replies = []
    for _ in range(3):
        s, f = connect(gw.smtp_port, "127.0.0.3")
        with s, f:
            f.readline()
            command(s, f, "EHLO client.test")
            for _ in range(2):
                replies.append(command(s, f, "MAIL FROM:<alice@sender.test>"))
                if replies[-1].startswith(b"421"):
                    break
                command(s, f, "RSET")
    assert [r[:3] for r in replies] == [b"250"] * 5 + [b"421"]  # client_message_rate_limit = 5
    assert replies[-1].startswith(b"421 4.7.0 gw.test Error: too many messages from 127.0.0.3")
    assert "reason=limit_exceeded limit=message_rate" in gw.logs()
    assert total(scrape(gw.metrics_port), "mailgate_ingress_limit_exceeded_total", limit="message_rate") == 1


def test_messages_per_connection_then_421_and_the_client_reconnects(gw):
    s, f = connect(gw.smtp_port, "127.0.0.4")
    with s, f:
        f.readline()
        command(s, f, "EHLO client.test")
        replies = []
        for _ in range(4):
            replies.append(command(s, f, "MAIL FROM:<alice@sender.test>"))
            if not replies[-1].startswith(b"421"):
                command(s, f, "RSET")
        assert [r[:3] for r in replies] == [b"250"] * 3 + [b"421"]  # max_messages_per_connection = 3
        assert replies[-1].startswith(b"421 4.7.0 ")
        assert f.readline() == b""  # closed
    assert "reason=limit_exceeded limit=messages_per_connection" in gw.logs()


def test_session_time_limit_ends_even_an_active_session_with_421(gw):
    s, f = connect(gw.fast_port)
    started = time.monotonic()
    with s, f:
        f.readline()
        command(s, f, "EHLO client.test")
        while True:  # busy: a NOOP every 0.5 s, so the 2 s idle timer never fires
            reply = command(s, f, "NOOP")
            if not reply.startswith(b"250"):
                break
            time.sleep(0.5)
    took = time.monotonic() - started
    assert reply.startswith(b"421 4.7.0 gw.test Error: session time limit exceeded"), reply
    assert 4.9 <= took < 20, took  # max_session_s = 5
    assert "reason=limit_exceeded limit=session_time" in gw.logs()


def test_a_slow_but_moving_data_outlives_the_idle_timeout(gw):
    s, f = connect(gw.fast_port)  # idle 2 s, session 5 s: the DATA below takes ~3.6 s
    with s, f:
        f.readline()
        command(s, f, "EHLO client.test")
        command(s, f, "MAIL FROM:<alice@sender.test>")
        command(s, f, "RCPT TO:<bob@example.test>")
        assert command(s, f, "DATA").startswith(b"354")
        s.sendall(b"Subject: slow\r\n\r\n")
        for i in range(2):  # a line every 1.2 s: no gap reaches the 2 s idle timeout, the whole DATA does
            time.sleep(1.2)
            s.sendall(b"line %d\r\n" % i)
        time.sleep(1.2)
        s.sendall(b"end\r\n")
        reply = command(s, f, ".")
    assert reply.startswith(b"250 2.0.0 Ok: queued as"), reply


def test_a_silent_data_is_still_cut_at_the_idle_timeout(gw):
    s, f = connect(gw.fast_port)
    with s, f:
        f.readline()
        command(s, f, "EHLO client.test")
        command(s, f, "MAIL FROM:<alice@sender.test>")
        command(s, f, "RCPT TO:<bob@example.test>")
        assert command(s, f, "DATA").startswith(b"354")
        s.sendall(b"Subject: stalled\r\n\r\n")
        reply = f.readline()  # nothing more is sent
    assert re.match(rb"421 4\.4\.2 gw\.test Error: timeout exceeded", reply), reply
