"""A real DNS server on loopback for the tests: Debian's dnsmasq, serving TXT records from the command line.

`DnsServer({"example.test": ["v=spf1 ip4:127.0.0.1 -all"], ...}, zones=["test"])` starts dnsmasq on 127.0.0.1 at a
free non-53 port; it answers only from these records (`--no-resolv`, `--local=/<zone>/`: other names under a zone
are NXDOMAIN, never forwarded), with a TTL of 300 s. Long TXT values are split into 255-byte character-strings (one
record). MX, A/AAAA and null MX records too (`mx=`, `hosts=`, `null_mx=`: direct delivery's tests), zones answering one
address for every name (`wildcards=`) or asked of another server (`forward=`: the DNS-list tests), and `SilentDns`,
a name server that never answers.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

from tests.support.harness import free_port


def _free_udp_port() -> int:
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _txt_arg(name: str, value: str) -> str:
    if "," in value:
        raise ValueError("dnsmasq splits TXT values at commas: keep them out of test records")
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return "--txt-record=" + ",".join([name] + chunks)  # argv, not a shell: no quoting


def _null_mx_arg(name: str) -> str:
    """RFC 7505's null MX (preference 0, exchange the root) as a raw record: dnsmasq's --mx-host takes no "."."""
    return f"--dns-rr={name},15,000000"


class DnsServer:
    """`mx`: name -> [(preference, host)]; `hosts`: name -> addresses (A or AAAA); `null_mx`: names with a null MX."""

    def __init__(self, records: dict[str, list[str]], zones: tuple[str, ...] = ("test",),
                 mx: dict[str, list[tuple[int, str]]] | None = None, hosts: dict[str, list[str]] | None = None,
                 null_mx: tuple[str, ...] = (), wildcards: dict[str, str] | None = None,
                 forward: dict[str, int] | None = None) -> None:
        self.records = records
        self.mx = mx or {}
        self.hosts = hosts or {}
        self.null_mx = null_mx
        self.wildcards = wildcards or {}
        """zone -> address: every name under the zone answers it (a DNS list that lists the world)."""
        self.forward = forward or {}
        """zone -> port of a name server on 127.0.0.1 asked for it (SilentDns: a list that never answers)."""
        self.zones = zones
        self.port = _free_udp_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DnsServer":
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        args = [exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={self.port}", "--user=root",
                "--pid-file", "--log-facility=-", "--cache-size=0", "--local-ttl=300"]
        args += [f"--local=/{z}/" for z in self.zones]
        args += [_txt_arg(name, v) for name, values in self.records.items() for v in values]
        args += [f"--mx-host={name},{host},{pref}" for name, entries in self.mx.items() for pref, host in entries]
        args += [f"--host-record={name},{ip}" for name, ips in self.hosts.items() for ip in ips]
        args += [_null_mx_arg(name) for name in self.null_mx]
        args += [f"--address=/{zone}/{ip}" for zone, ip in self.wildcards.items()]
        args += [f"--server=/{zone}/127.0.0.1#{port}" for zone, port in self.forward.items()]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 10) -> None:
        import dns.message
        import dns.query
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                dns.query.udp(dns.message.make_query("ready.test.", "TXT"), "127.0.0.1", timeout=0.5, port=self.port)
                return
            except Exception:
                time.sleep(0.1)
        raise AssertionError("dnsmasq did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def config(self) -> dict:
        """`sender_auth.dns` settings pointing at this server."""
        return {"nameservers": ["127.0.0.1"], "port": self.port, "timeout_s": 2}

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentDns:
    """A name server that never answers: a UDP socket on loopback that reads nothing (a DNS timeout)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()
