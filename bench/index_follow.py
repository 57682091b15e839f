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
import time
from pathlib import Path

from local_kafka import local_kafka  # bench/local_kafka.py; puts the repository on sys.path

from aiokafka.consumer import fetcher  # noqa: E402

from egress.delivered_index import DeliveredIndex  # noqa: E402
from mailgate.core import kafka, topics  # noqa: E402
from mailgate.core.config import Config  # noqa: E402
from mailgate.ops.kafka import local_broker as broker  # noqa: E402

fetches = 0
_fetch = fetcher.Fetcher._proc_fetch_request


async def _counted(self, *args, **kwargs):
    global fetches
    fetches += 1
    return await _fetch(self, *args, **kwargs)


fetcher.Fetcher._proc_fetch_request = _counted  # the follower is the only consumer in this process


def pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(cfg: Config, broker_pid: int, seconds: float, rate: float) -> None:
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
    with local_kafka({"kafka": {"partitions": 4}}) as (cfg, _, _):
        print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine disturbs the numbers)")
        asyncio.run(measure(cfg, broker.status(cfg).pid, args.seconds, args.rate))


if __name__ == "__main__":
    main()
