"""A real SpamAssassin spamd for integration and scenario tests (offline: --local, Debian's stock rules).

`running_spamd(workdir)` starts one on a free loopback port and waits until a child answers PING; `Spamd.stop()`
and `Spamd.start()` stop it and bring it back on the same port (for "scanner down" tests). Test modules wrap it in
fixtures; nothing here is mocked.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


from tests.support.daemon import start_daemon, stop_group
from tests.support.ports import free_port

SPAMD = shutil.which("spamd") or shutil.which("spamd", path="/usr/sbin:/usr/local/sbin")
START_TIMEOUT_S = 60

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
"""The Generic Test for Unsolicited Bulk Email: SpamAssassin scores a message containing it 1000."""


def spamd_command(port: int) -> list[str]:
    """The spamd command line the tests (and CI, and scenario tests) use: loopback only, one child, offline."""
    assert SPAMD is not None
    cmd = [SPAMD, f"--listen=127.0.0.1:{port}", "--allowed-ips=127.0.0.1", "--max-children=1", "--syslog=stderr",
           "--local", "--nouser-config", "--cf=use_bayes 0"]
    if os.geteuid() == 0:  # spamd refuses to scan as root; as a normal user -u would fail to setuid
        cmd.append("--username=nobody")
    return cmd


def pong(port: int) -> bool:
    """spamd binds before it has loaded its rules; it is ready when a child answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in s.recv(100)
    except OSError:
        return False


@dataclass
class Spamd:
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    started_in_s: float = 0.0

    def start(self) -> "Spamd":
        """Start spamd on `port` and wait until it answers PING (sync: fixtures run outside the event loop)."""
        began = time.monotonic()
        self.proc = start_daemon(spamd_command(self.port), self.log, lambda: pong(self.port), "spamd",
                                 START_TIMEOUT_S)
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        stop_group(self.proc)


@contextlib.contextmanager
def running_spamd(workdir: Path) -> Iterator[Spamd]:
    """A spamd on a free port for the duration of the block; stopped afterwards whatever happened."""
    spamd = Spamd(free_port(), workdir / "spamd.log")
    try:
        yield spamd.start()
    finally:
        spamd.stop()
