"""`mailgate admin` as a real process for the tests that drive its page or API (browser tests, API properties).

Reads: a Gateway's config file. Emits: the process's output into `admin.log` in the Gateway's work dir; the base URL
once `/api/openapi.json` answers (within the deadline, or AssertionError with the log).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

from tests.support.harness import ROOT, Gateway, free_port


@contextlib.contextmanager
def admin_server(gw: Gateway, *, extra_env: dict[str, str] | None = None,
                 start_timeout_s: float = 60) -> Iterator[str]:
    """Start `mailgate admin` on a free loopback port; yield its base URL (no trailing slash); stop it after."""
    port = free_port()
    log_path = gw.workdir / "admin.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", "admin", "--config", str(gw.config_path),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(ROOT), env={**os.environ, **(extra_env or {})}, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(base + "/api/openapi.json", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(log_path.read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
        log.close()
