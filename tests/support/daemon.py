"""A test peer (spamd, rspamd) as a process of its own group: started and waited for, then stopped whatever happened."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest


def start_daemon(command: list[str], log: Path, ready: Callable[[], bool], what: str,
                 timeout_s: float) -> subprocess.Popen:
    """Start `command` in its own process group, output to `log`, and wait until `ready()`; a clear test failure
    with the log's tail if it exits or takes longer than `timeout_s`."""
    began = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    while not ready():
        if proc.poll() is not None or time.monotonic() - began > timeout_s:
            stop_group(proc)
            pytest.fail(f"{what} did not start (exit {proc.returncode}):\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return proc


def stop_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the process group (the parent and its children), SIGKILL if it lingers; idempotent."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
