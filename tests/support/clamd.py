"""A real ClamAV clamd for integration and scenario tests, offline, with a signature database the test writes.

The official databases cannot be downloaded here, so `write_database` makes two signatures of its own: the EICAR
test file's MD5 as an `.hdb` entry, and a hex body signature (`.ndb`) for a marker string; clamd reports them with
ClamAV's `.UNOFFICIAL` suffix (EICAR_SIGNATURE, MARKER_SIGNATURE). `running_clamd(workdir)` starts one on a free
loopback port (tests/support/ports.py) and waits until it answers PING; `Clamd.stop()` and `Clamd.start()` stop it
and bring it back on the same port (for "scanner down" tests). Starting takes a fraction of a second with this
database, but a module-scoped fixture starts it once per test module all the same. Nothing here is mocked.
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.daemon import start_daemon, stop_group
from tests.support.ports import free_port

CLAMD = shutil.which("clamd") or shutil.which("clamd", path="/usr/sbin:/usr/local/sbin")
START_TIMEOUT_S = 60
PEER_MISSING = "clamd is not installed (peer missing: clamav-daemon)"

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + b"$H+H*")
"""The EICAR anti-virus test file (68 bytes), joined here so that this source file is not itself the test file."""
EICAR_SIGNATURE = "Eicar-Test-Signature.UNOFFICIAL"
MARKER = b"mailgate-clamav-test-marker-4f2a9c"
"""A string the `.ndb` hex signature matches anywhere in a file."""
MARKER_SIGNATURE = "Mailgate.Test.Marker.UNOFFICIAL"


def write_database(db: Path) -> Path:
    """The test's signature database in `db`: EICAR by MD5 (`test.hdb`) and MARKER by a hex body signature
    (`test.ndb`)."""
    db.mkdir(parents=True, exist_ok=True)
    (db / "test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:"
                                 f"{EICAR_SIGNATURE.removesuffix('.UNOFFICIAL')}\n")
    (db / "test.ndb").write_text(f"{MARKER_SIGNATURE.removesuffix('.UNOFFICIAL')}:0:*:{MARKER.hex()}\n")
    return db


def clamd_conf(workdir: Path, port: int, unix_socket: Path | None = None, **options: str) -> Path:
    """A clamd.conf for loopback (and a Unix socket when given), foreground, the test's database, logging to the
    workdir; `options` are further clamd.conf settings (e.g. StreamMaxLength="1M")."""
    lines = {"DatabaseDirectory": str(write_database(workdir / "db")), "TCPSocket": str(port),
             "TCPAddr": "127.0.0.1", "Foreground": "yes", "User": "root", "LogFile": str(workdir / "clamd.log"),
             "LogTime": "yes", "PidFile": str(workdir / "clamd.pid"), **options}
    if unix_socket is not None:
        lines["LocalSocket"] = str(unix_socket)
    path = workdir / "clamd.conf"
    path.write_text("".join(f"{k} {v}\n" for k, v in lines.items()))
    return path


def pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


@dataclass
class Clamd:
    workdir: Path
    port: int
    unix_socket: Path | None = None
    proc: subprocess.Popen | None = None
    started_in_s: float = 0.0

    def start(self, **options: str) -> "Clamd":
        """Start clamd and wait until it answers PING (sync: fixtures run outside the event loop)."""
        assert CLAMD is not None, PEER_MISSING
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = clamd_conf(self.workdir, self.port, self.unix_socket, **options)
        began = time.monotonic()
        self.proc = start_daemon([CLAMD, "-c", str(conf)], self.workdir / "clamd.out", lambda: pong(self.port),
                                 "clamd", START_TIMEOUT_S)
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        stop_group(self.proc)

    @property
    def scanner(self) -> dict:
        """This clamd as an entry of `antivirus.scanners`."""
        return {"host": "127.0.0.1", "port": self.port}


@contextlib.contextmanager
def running_clamd(workdir: Path, unix_socket: bool = False, **options: str) -> Iterator[Clamd]:
    """A clamd on a free port (and `workdir/clamd.sock` when `unix_socket`) for the block; stopped afterwards."""
    clamd = Clamd(workdir, free_port(), workdir / "clamd.sock" if unix_socket else None)
    try:
        yield clamd.start(**options)
    finally:
        clamd.stop()
