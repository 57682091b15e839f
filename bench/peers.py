"""The benchmark's peers on loopback: the downstream sink (Postfix's `smtp-sink`, or bench/slow_sink.py), the load
(Postfix's `smtp-source`), and a private Postfix instance relaying to the sink, to compare mailgate with."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENDER, RCPT = "a@src.test", "u@example.test"


@dataclass(frozen=True)
class Workload:
    name: str
    size: int
    messages: int
    quick_messages: int
    rcpts: int = 1
    sessions: int = 20
    slow_ms: int = 0
    egress_replicas: int = 1
    scan: bool = False  # virus scanning on: mailgate's antivirus with clamd, Postfix with clamav-milter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """smtp-sink -c (or the slow Python sink), counting messages from its `mesg=N` counter."""

    def __init__(self, workdir: Path, port: int, slow_ms: int) -> None:
        self.out = workdir / f"sink-{port}-{time.monotonic_ns()}.out"
        self.timings: Path | None = None
        if slow_ms:
            self.timings = self.out.with_suffix(".timings.json")
            cmd = [sys.executable, str(ROOT / "bench" / "slow_sink.py"), str(port), str(slow_ms), str(self.timings)]
        else:
            cmd = ["smtp-sink", "-c", "-u", "postfix", f"127.0.0.1:{port}", "256"]
        self.fh = open(self.out, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"sink on {port} did not start: {self.out.read_text(errors='replace')[-500:]}")

    def count(self) -> int:
        with open(self.out, "rb") as f:
            f.seek(max(0, os.path.getsize(self.out) - 200))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def wait(self, n: int, timeout_s: float) -> float | None:
        """Monotonic time at which the count reached n, or None after timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count() >= n:
                return time.monotonic()
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.fh.close()


def smtp_source(port: int, w: Workload, n: int, sessions: int | None = None,
                message_file: Path | None = None) -> tuple[float, str]:
    """smtp-source's wall time and what it said; `message_file` is sent as the message (`-F`) instead of -l's."""
    cmd = ["smtp-source", "-s", str(sessions or w.sessions), "-m", str(n), "-f", SENDER, "-t", RCPT]
    cmd += ["-F", str(message_file)] if message_file is not None else ["-l", str(w.size)]
    if w.rcpts > 1:
        cmd += ["-r", str(w.rcpts)]
    cmd.append(f"127.0.0.1:{port}")
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t
    errs = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        errs = f"exit {p.returncode}: {errs}"
    return wall, errs[-500:]


MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance: own config dir and queue dir, 127.0.0.1 only, relaying everything to the sink."""

    def __init__(self, workdir: Path, sink_port: int, name: str = "postfix", extra: dict | None = None) -> None:
        """`extra`: further main.cf settings (e.g. smtpd_milters); `name`: the instance's directory."""
        self.dir = workdir / name
        self.port = free_port()
        conf, queue, data = self.dir / "etc", self.dir / "queue", self.dir / "data"
        for d in (conf, queue, data):
            d.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(queue), "data_directory": str(data),
            "mail_owner": "postfix", "setgid_group": "postdrop",
            "myhostname": "postfix.bench.test", "mydomain": "bench.test", "myorigin": "$myhostname",
            "mydestination": "", "local_recipient_maps": "", "local_transport": "error:no local delivery",
            "alias_maps": "", "alias_database": "", "relay_domains": "",
            "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "relayhost": f"[127.0.0.1]:{sink_port}", "smtp_dns_support_level": "disabled",
            "maillog_file": str(self.dir / "maillog"), "maillog_file_prefixes": str(self.dir),
            "smtputf8_enable": "no", "biff": "no",
            "smtpd_banner": "$myhostname ESMTP", "message_size_limit": "26214400",
            **(extra or {}),
        }
        (conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        self.conf = conf

    def _postfix(self, *args: str) -> subprocess.CompletedProcess:
        # postfix(1) reports errors on stderr only when it is a terminal (else to syslog): give it one via script(1).
        cmd = " ".join(["postfix", "-c", str(self.conf), *args])
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        self._postfix("set-permissions")
        p = self._postfix("start")
        if p.returncode != 0:
            raise RuntimeError(f"postfix start failed: {p.stdout}{p.stderr}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("postfix did not listen")

    def master_pid(self) -> int:
        return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])

    def stop(self) -> None:
        self._postfix("stop")
