"""Direct delivery end to end (issue #36): outbound mail with no outbound gateway goes to its recipients' MX hosts.

Real broker, real stage processes, a real DNS server (dnsmasq on loopback, a non-53 port, egress pointed at it by
`delivery.direct.dns`) and real aiosmtpd servers on 127.0.0.11-13 as MX hosts, all on one port (the direct
delivery port). Each test asserts on what the MX servers received and on the events in `mail.events`.
"""
from __future__ import annotations

import smtplib
import socket
import socketserver
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from tests.support.dns_server import DnsServer, SilentDns
from tests.support.harness import Gateway, RecordingHandler, free_port

pytestmark = pytest.mark.scenario

SENDER = "alice@sender.test"


class MxServer:
    """An SMTP server on one loopback address; it records what it received and counts connections."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.handler = CountingHandler()
        self.controller = Controller(self.handler, hostname=address, port=port)

    def start(self) -> "MxServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self):
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout_s: float = 60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.1)
        raise AssertionError(f"{self.address} got {len(self.messages)} messages, expected {count}")


class CountingHandler(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.count_lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.count_lock:
            self.connections += 1
        session.host_name = hostname
        return responses


class BusyGreeting(socketserver.BaseRequestHandler):
    """An MX host that greets every connection with 421 and closes it."""

    connections = 0

    def handle(self) -> None:
        BusyGreeting.connections += 1
        self.request.sendall(b"421 4.3.2 busy, try again later\r\n")
        self.request.shutdown(socket.SHUT_WR)


@pytest.fixture
def busy_mx(mx_port):
    """On 127.0.0.14: answers 421 at the greeting."""
    BusyGreeting.connections = 0
    server = socketserver.ThreadingTCPServer(("127.0.0.14", mx_port), BusyGreeting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def mx_port():
    return free_port()


@pytest.fixture
def mx_servers(mx_port):
    """MX servers on 127.0.0.12 and 127.0.0.13; nothing listens on 127.0.0.11 (it refuses connections)."""
    servers = {a: MxServer(a, mx_port).start() for a in ("127.0.0.12", "127.0.0.13")}
    yield servers
    for s in servers.values():
        s.stop()


MX = {
    "two.test": [(10, "mx1.two.test"), (20, "mx2.two.test")],  # mx1 refuses, mx2 takes it
    "three.test": [(10, "mx1.two.test"), (20, "busy.three.test"), (30, "mx2.two.test")],  # refuses, 421, takes it
    "sender.test": [(10, "mx.sender.test")],  # where DSNs to the sender go
    "one.test": [(10, "mx.one.test")],
    "loop.test": [(10, "mx.loop.test")],
}
HOSTS = {
    "mx1.two.test": ["127.0.0.11"], "mx2.two.test": ["127.0.0.12"], "busy.three.test": ["127.0.0.14"],
    "mx.sender.test": ["127.0.0.13"], "mx.one.test": ["127.0.0.13"],
    "implicit.test": ["127.0.0.12"],  # no MX: the domain's own address
    "mx.loop.test": ["127.0.0.5"],  # an address of this host, where our ingress listens (0.0.0.0)
}


@pytest.fixture
def dns():
    server = DnsServer({}, mx=MX, hosts=HOSTS, null_mx=("nullmx.test",)).start()
    yield server
    server.stop()


def direct_config(mx_port: int, dns_port: int, **direct) -> dict:
    return {"ingress": {"relay_networks": ["127.0.0.1"]}, "outbound_gateways": [],
            "delivery": {"direct": {"enabled": True, "port": mx_port, "prohibited_hosts": [],
                                    "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout_s": 1},
                                    **direct}}}


def send(port: int, rcpts: list[str], subject: str = "direct") -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail(SENDER)
        for r in rcpts:
            code, reply = s.rcpt(r)
            assert code == 250, reply
        code, reply = s.data(f"From: {SENDER}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
                             f"Message-ID: <{subject}@sender.test>\r\n\r\nbody\r\n".encode())
        assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def start(gateway: Gateway, cfg: dict) -> None:
    gateway.configure(cfg)
    gateway.start_broker()
    gateway.start_all()


def of_type(gateway: Gateway, mid: str, name: str) -> list:
    return [e for e in gateway.events(mid) if type(e).__name__ == name]


def dsn_for(dsn_mx: MxServer, count: int = 1) -> list:
    """The DSNs the sender's MX received (direct delivery of the bounce to sender.test)."""
    return [m for m in dsn_mx.wait_for(count) if m.mail_from in ("", "<>")]


def test_a_null_mx_bounces_at_once_with_one_dsn_and_no_connection(gateway, dns, mx_port, mx_servers):
    start(gateway, direct_config(mx_port, dns.port))
    mid = send(gateway.smtp_port, ["bob@nullmx.test"], "nullmx")
    types = gateway.wait_events(mid, "MessageBounced")
    assert "DeliveryAttempted" not in types and "DeliveryDeferred" not in types
    bounced = of_type(gateway, mid, "MessageBounced")
    assert len(bounced) == 1 and "5.1.10" in bounced[0].reason and bounced[0].recipients == ["bob@nullmx.test"]
    dsns = dsn_for(mx_servers["127.0.0.13"])
    assert len(dsns) == 1 and dsns[0].rcpt_tos == [SENDER] and b"5.1.10" in dsns[0].data
    routed = of_type(gateway, mid, "MessageRouted")
    assert [(r.route.kind, r.route.destination) for r in routed] == [("direct", "nullmx.test")]
    assert mx_servers["127.0.0.12"].handler.connections == 0  # the DSN's session is the only one, on .13
    assert mx_servers["127.0.0.13"].handler.connections == 1


def test_an_implicit_mx_delivers(gateway, dns, mx_port, mx_servers):
    start(gateway, direct_config(mx_port, dns.port))
    mid = send(gateway.smtp_port, ["carol@implicit.test"], "implicit")
    got = mx_servers["127.0.0.12"].wait_for(1)
    assert [(m.mail_from, m.rcpt_tos) for m in got] == [(SENDER, ["carol@implicit.test"])]
    gateway.wait_events(mid, "MessageDelivered")
    attempted = of_type(gateway, mid, "DeliveryAttempted")
    assert [(a.gateway, a.host, a.port, a.mx_host) for a in attempted] == [
        ("implicit.test", "127.0.0.12", mx_port, "implicit.test")]


def test_when_the_first_mx_refuses_the_second_gets_it_once(gateway, dns, mx_port, mx_servers, busy_mx):
    start(gateway, direct_config(mx_port, dns.port))
    mid = send(gateway.smtp_port, ["dave@two.test"], "two")
    busy = send(gateway.smtp_port, ["dora@three.test"], "busy")
    for m in (mid, busy):
        types = gateway.wait_events(m, "MessageDelivered")
        assert types.count("MessageDelivered") == 1 and "DeliveryDeferred" not in types
    attempted = of_type(gateway, mid, "DeliveryAttempted")
    assert [(a.mx_host, a.host) for a in attempted] == [("mx1.two.test", "127.0.0.11"), ("mx2.two.test", "127.0.0.12")]
    assert attempted[0].error.startswith("connect:") and attempted[1].error is None
    # a 421 greeting, like a refused connection, sends the attempt on to the next MX host
    attempted = of_type(gateway, busy, "DeliveryAttempted")
    assert [a.mx_host for a in attempted] == ["mx1.two.test", "busy.three.test", "mx2.two.test"]
    # (egress/smtp_session.py files a refused greeting under step "connect": aiosmtplib's error for it is also a
    # connect error, caught first)
    assert "(421, '4.3.2 busy" in attempted[1].error and BusyGreeting.connections == 1
    assert sorted(m.rcpt_tos for m in mx_servers["127.0.0.12"].messages) == [["dave@two.test"], ["dora@three.test"]]


def test_a_dns_timeout_defers_and_the_mail_is_delivered_once_dns_answers(gateway, mx_port, mx_servers):
    silent = SilentDns()
    start(gateway, direct_config(mx_port, silent.port))
    mid = send(gateway.smtp_port, ["erin@one.test"], "timeout")
    gateway.wait_events(mid, "DeliveryDeferred")
    deferred = of_type(gateway, mid, "DeliveryDeferred")
    assert "4.4.3" in deferred[0].reason and "DeliveryAttempted" not in gateway.event_types(mid)
    assert mx_servers["127.0.0.13"].messages == []
    answering = DnsServer({}, mx=MX, hosts=HOSTS)
    answering.port = silent.port  # the name server egress asks starts answering
    silent.close()
    answering.start()
    try:
        got = mx_servers["127.0.0.13"].wait_for(1)
        types = gateway.wait_events(mid, "MessageDelivered")
    finally:
        answering.stop()
    assert [m.rcpt_tos for m in got] == [["erin@one.test"]]
    assert types.count("MessageDelivered") == 1 and "MessageBounced" not in types


def test_a_three_domain_message_is_split_and_each_part_delivered_once(gateway, dns, mx_port, mx_servers):
    start(gateway, direct_config(mx_port, dns.port))
    rcpts = ["f1@two.test", "g@implicit.test", "h@one.test", "f2@Two.test"]
    mid = send(gateway.smtp_port, rcpts, "split")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(of_type(gateway, mid, "MessageDelivered")) < 3:
        time.sleep(0.5)
    routed = of_type(gateway, mid, "MessageRouted")
    assert sorted((r.route.destination, tuple(r.recipients)) for r in routed) == [
        ("implicit.test", ("g@implicit.test",)), ("one.test", ("h@one.test",)),
        ("two.test", ("f1@two.test", "f2@two.test"))]  # ingress keeps domains in lower case
    delivered = of_type(gateway, mid, "MessageDelivered")
    assert sorted((d.gateway, tuple(d.recipients)) for d in delivered) == [
        ("implicit.test", ("g@implicit.test",)), ("one.test", ("h@one.test",)),
        ("two.test", ("f1@two.test", "f2@two.test"))]
    at_12 = sorted(tuple(m.rcpt_tos) for m in mx_servers["127.0.0.12"].messages)
    assert at_12 == [("f1@two.test", "f2@two.test"), ("g@implicit.test",)]  # two.test via mx2, implicit.test
    assert [m.rcpt_tos for m in mx_servers["127.0.0.13"].messages] == [["h@one.test"]]


def test_the_loop_guard_refuses_our_own_address(gateway, dns, mx_port, mx_servers):
    # ingress listens on 0.0.0.0 at the direct delivery port; loop.test's MX is 127.0.0.5, an address of this host
    cfg = direct_config(gateway.smtp_port, dns.port)
    cfg["ingress"]["listen_host"] = "0.0.0.0"
    start(gateway, cfg)
    mid = send(gateway.smtp_port, ["ivan@loop.test"], "loop")
    types = gateway.wait_events(mid, "MessageBounced")
    assert "DeliveryAttempted" not in types
    bounced = of_type(gateway, mid, "MessageBounced")
    assert len(bounced) == 1 and "5.4.6" in bounced[0].reason and "loops back to myself" in bounced[0].reason
    received = [e for e in gateway.events() if type(e).__name__ == "MessageReceived"]
    assert [e.rcpt_to for e in received if e.mail_from] == [["ivan@loop.test"]]  # never accepted from ourselves
