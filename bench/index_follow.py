"""How many fetch requests egress's delivered index makes to follow `mail.delivered` while mail flows.

Usage: python bench/index_follow.py [--seconds 5] [--rate 250]

Starts its own broker (free ports, temporary directory), then in this process: a DeliveredIndex following
mail.delivered, and a writer appending two records per message (the write-ahead mark and the delivered record, as
egress does), one at a time with its acknowledgement awaited, at about RATE messages per second. Prints the
records written, the fetch requests the follower made, and the broker's CPU per 1,000 records.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka.consumer import fetcher  # noqa: E402

from egress.delivered_index import DeliveredIndex  # noqa: E402
from mailgate.core import kafka, topics  # noqa: E402
from mailgate.core.config import Config, parse_config  # noqa: E402
from mailgate.ops import broker  # noqa: E402

fetches = 0
_fetch = fetcher.Fetcher._proc_fetch_request


async def _counted(self, *args, **kwargs):
    global fetches
    fetches += 1
    return await _fetch(self, *args, **kwargs)


fetcher.Fetcher._proc_fetch_request = _counted  # the follower is the only consumer in this process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(cfg: Config, broker_pid: int, seconds: float, rate: float) -> None:
    await kafka.ensure_topics(cfg)
    index = DeliveredIndex(cfg)
    await index.start()
    writer = kafka.producer(cfg, "bench-writer")
    await writer.start()
    f0, b0, t0 = fetches, pid_cpu(broker_pid), time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        for key in (f"{n:08d}:a@far.test", f"{n:08d}:b@far.test"):
            await (await writer.send(topics.DELIVERED, b"1", key=key.encode()))
        n += 1
        await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
    await index.catch_up()
    f1, b1 = fetches, pid_cpu(broker_pid)
    print(f"{2 * n} records in {time.monotonic() - t0:.1f} s; follower fetch requests: {f1 - f0}; "
          f"broker CPU {1000 * (b1 - b0) / (2 * n):.2f} s per 1,000 records; index holds {len(index)}")
    await writer.stop()
    await index.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rate", type=float, default=250, help="messages per second (two records each)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailgate-follow-"))
    port, controller = free_port(), free_port()
    cfg = parse_config({"kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"]},
                        "local_broker": {"home": str(work / "broker"), "port": port, "controller_port": controller,
                                         "heap": "-Xms512m -Xmx1g"}})
    st = broker.start(cfg)
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine disturbs the numbers)")
        asyncio.run(measure(cfg, st.pid, args.seconds, args.rate))
    finally:
        broker.stop(cfg)


if __name__ == "__main__":
    main()
