"""The SMTP floor under ingress's per-message CPU: what receiving mail over SMTP alone costs, with nothing done with
it, in aiosmtpd (the library ingress is built on) and in Postfix's `smtp-sink`, on this machine.

Usage: python bench/smtp_floor.py [--messages N] [--size BYTES] [--rounds R]

Per round and server: the server on a free loopback port (aiosmtpd: bench/slow_sink.py with no delay, on asyncio's
loop and on uvloop, which the stages use; `smtp-sink -u postfix`), 200 warm-up messages, then `smtp-source -s 20 -m N
-l BYTES` (a new connection per message, as bench/run.py sends) and the server's CPU seconds per 1,000 messages.
Beside bench/kafka_floor.py this bounds what a Python stage can reach: ingress pays at least the aiosmtpd figure for
every message it receives before any Kafka or mail work.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers import SENDER, RCPT, free_port  # noqa: E402
from bench.procstats import cpu_s  # noqa: E402

SINK = str(ROOT / "bench" / "slow_sink.py")
SERVERS = {
    "aiosmtpd (asyncio)": lambda port: [sys.executable, SINK, str(port), "0"],
    "aiosmtpd (uvloop)": lambda port: [sys.executable, "-c", "import runpy, sys, uvloop; uvloop.install(); "
                                       f"sys.argv = ['slow_sink', '{port}', '0']; "
                                       f"runpy.run_path({SINK!r}, run_name='__main__')"],
    "smtp-sink": lambda port: ["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "256"],
}


def load(port: int, n: int, size: int) -> None:
    subprocess.run(["smtp-source", "-s", "20", "-m", str(n), "-l", str(size), "-f", SENDER, "-t", RCPT,
                    f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=600)


def measure(command: list[str], port: int, n: int, size: int) -> tuple[float, float]:
    """(messages per second, server CPU seconds per 1,000 messages)."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["smtp-source", "-m", "1", f"127.0.0.1:{port}"], capture_output=True).returncode:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{command[0]} did not start on port {port}")
            time.sleep(0.2)
        load(port, 200, size)
        cpu0, t0 = cpu_s(server.pid), time.monotonic()
        load(port, n, size)
        wall, cpu = time.monotonic() - t0, cpu_s(server.pid) - cpu0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
    return n / wall, cpu / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print("| round | server | msg/s | CPU s per 1,000 messages |\n|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        for name, command in SERVERS.items():
            port = free_port()
            rate, cpu = measure(command(port), port, args.messages, args.size)
            print(f"| {r} | {name} | {rate:,.0f} | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
