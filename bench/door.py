"""CPU of one ingress process per 1,000 connections refused at the door (pre-greet, DNS lists) against per 1,000
accepted messages (each written to Kafka with acks=all).

Run from the repository root: `python bench/door.py [--n 1000]` (needs dnsmasq and the Kafka jars, as scripts/install
sets up). Starts a local broker, dnsmasq serving one block list (bl.test lists 127.0.0.2), and one ingress with three
listeners: `main` (pre-greet test `drop`, greet_wait_s 0.2), `bl` (no pre-greet test; DNS lists refused at connect
with `ingress.dnsbl.action: connect`) and `acc` (neither). Phases, one connection at a time: N bots from 127.0.0.5
that speak before the greeting ends (521); N clients from 127.0.0.2 refused by the list (521; after the first, its
answer comes from the cache, as for a bot that reconnects); N messages of 1 KB from 127.0.0.6, one per connection.
Prints the ingress process's CPU seconds (utime + stime from /proc) per 1,000 of each.
"""
from __future__ import annotations

import argparse
import smtplib
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstats import cpu_s  # noqa: E402
from tests.support.dns_server import DnsServer  # noqa: E402
from tests.support.harness import Gateway, free_port  # noqa: E402


def pregreet_bot(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=("127.0.0.5", 0)) as s:
        f = s.makefile("rb")
        f.readline()  # 220- (the greeting's first line)
        s.sendall(b"EHLO bot.test\r\n")
        return f.readline()


def listed_client(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=("127.0.0.2", 0)) as s:
        return s.makefile("rb").readline()


def accepted(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.6", 0)) as c:
        c.ehlo("client.test")
        c.mail("alice@sender.test")
        c.rcpt("bob@example.test")
        return c.data(b"Subject: bench\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10)[0]


def measure(pid: int, n: int, one, want) -> tuple[float, float]:
    cpu0, t0 = cpu_s(pid, children_too=False), time.monotonic()
    for _ in range(n):
        got = one()
        assert want(got), got
    return cpu_s(pid, children_too=False) - cpu0, time.monotonic() - t0


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, DnsServer({}, hosts={"2.0.0.127.bl.test": ["127.0.0.2"]}) as dns:
        g = Gateway(Path(tmp))
        bl_port, acc_port = free_port(), free_port()
        g.configure({"ingress": {
            "pregreet": {"action": "drop", "greet_wait_s": 0.2},
            "dnsbl": {"sites": ["bl.test*3"], "threshold": 3, "action": "connect", "timeout_s": 1,
                      "dns": {"nameservers": ["127.0.0.1"], "port": dns.port}},
            "listeners": [{"name": "bl", "port": bl_port, "tls_mode": "none", "auth": False, "pregreet": "off"},
                          {"name": "acc", "port": acc_port, "tls_mode": "none", "auth": False, "dnsbl": False,
                           "pregreet": "off"}]},
            "inbound_gateways": [{"name": "p", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                  "primary_port": free_port(),
                                  "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}]})
        g.start_broker()
        try:
            pid = g.start("ingress").pid
            accepted(acc_port)  # warm: the producer's first batch, the first session
            rows = [("pre-greet refused (521 5.5.1)", *measure(pid, n, lambda: pregreet_bot(g.smtp_port),
                                                             lambda r: r.startswith(b"521 5.5.1"))),
                    ("DNS list refused at connect (521 5.7.1)", *measure(pid, n, lambda: listed_client(bl_port),
                                                                         lambda r: r.startswith(b"521 5.7.1"))),
                    ("accepted (250 after DATA, in Kafka)", *measure(pid, n, lambda: accepted(acc_port),
                                                                     lambda code: code == 250))]
        finally:
            g.stop_all()
            g.stop_broker()
    print(f"{'per 1,000':42} {'ingress CPU s':>14} {'wall s':>8}")
    for name, cpu, wall in rows:
        print(f"{name:42} {cpu * 1000 / n:14.2f} {wall * 1000 / n:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="connections (and messages) per phase")
    main(parser.parse_args().n)
