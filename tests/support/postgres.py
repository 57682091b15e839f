"""A real PostgreSQL server for tests: Debian's `postgresql` binaries, a fresh cluster in a temp dir, loopback only.

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user (runuser); the data dir is a
private temp dir that user owns. Authentication is `trust` on 127.0.0.1 for the test database only.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from tests.support.harness import free_port

BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
AVAILABLE = BIN is not None and os.path.exists(os.path.join(BIN, "initdb"))


def _as_db_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server; yield a libpq DSN for database `mailgate`; stop it and remove its files."""
    base = Path(tempfile.mkdtemp(prefix="mailgate-pg-"))
    data = base / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    run = dict(check=True, capture_output=True, timeout=120)
    subprocess.run(_as_db_user([f"{BIN}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                "--no-sync"]), **run)
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} -c fsync=off"
    subprocess.run(_as_db_user([f"{BIN}/pg_ctl", "-D", str(data), "-l", str(base / "server.log"), "-o", opts,
                                "-w", "-t", "60", "start"]), **run)
    try:
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        _create_db(dsn)
        yield f"host=127.0.0.1 port={port} user=postgres dbname=mailgate"
    finally:
        subprocess.run(_as_db_user([f"{BIN}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _create_db(dsn: str) -> None:
    import psycopg
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE DATABASE mailgate")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
