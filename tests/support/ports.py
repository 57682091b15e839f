"""Ports for the servers a test starts: free now, and out of the way of the kernel's own choices."""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_issued: set[int] = set()


def _ephemeral_low() -> int:
    """The lowest port the kernel gives to outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _range() -> tuple[int, int]:
    """This process's ports: below the ephemeral range, and under pytest-xdist a slice of its own per worker
    (`gw0`, `gw1`, ...), so two workers never pick the same port while one of them keeps it dark."""
    low = _ephemeral_low()
    first = max(1024, low // 2)
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and count > 1:
        size = (low - first) // count
        first += int(worker[2:]) * size
        low = first + size
    return first, low


def free_port() -> int:
    """A loopback port nothing listens on, below the ephemeral range, and never the same one twice in a run.

    A port from bind(0) is in the ephemeral range, so between the test's choice and its server's bind the kernel may
    give it to any outgoing connection as its local port; a connect to it while nothing listens can even connect to
    itself (TCP simultaneous open). A backup-MX test that keeps a primary's port dark for a minute while egress retries
    it lost the port that way ("address already in use" when the primary came back).
    """
    first, low = _range()
    for _ in range(1000):
        port = random.randrange(first, low)
        if port in _issued:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued.add(port)
        return port
    raise RuntimeError(f"no free port in {first}..{low - 1}")
