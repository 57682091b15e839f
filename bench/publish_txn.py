"""What a Kafka transaction costs ingress per accepted message (issue 14, item 4).

Usage: python bench/publish_txn.py [--messages N] [--concurrency C]

Against a real local broker, times the two writes ingress makes per message (the MessageReceived with its body to
mail.received, the body-less copy to mail.events) until both are acknowledged, two ways:
  * plain: the idempotent producer (acks=all), both sends in flight together (what ingress/publisher.py does);
  * txn:   a transactional producer, begin / send both / commit (aiokafka allows one open transaction per producer,
           so concurrent SMTP sessions queue for it).
Prints p50 / p95 / p99 accept latency in ms and messages per second for each, sequential and with C concurrent
sessions.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from local_kafka import local_kafka

from mailgate.core import kafka, topics
from mailgate.core.config import Config

BODY = b"x" * 4096
AUDIT = b"y" * 300


async def _plain(p, lock: asyncio.Lock, i: int) -> None:
    key = str(i).encode()
    f1 = await p.send(topics.RECEIVED, BODY, key=key)
    f2 = await p.send(topics.EVENTS, AUDIT, key=key)
    await asyncio.gather(f1, f2)


async def _txn(p, lock: asyncio.Lock, i: int) -> None:
    key = str(i).encode()
    async with lock:  # one open transaction per producer
        async with p.transaction():
            await p.send(topics.RECEIVED, BODY, key=key)
            await p.send(topics.EVENTS, AUDIT, key=key)


async def run(cfg: Config, kind: str, n: int, concurrency: int) -> tuple[list[float], float]:
    extra = {"transactional_id": f"bench-{kind}-{concurrency}"} if kind == "txn" else {}
    p = kafka.producer(cfg, f"bench-{kind}", linger_ms=1, **extra)
    await p.start()
    one = _txn if kind == "txn" else _plain
    lock = asyncio.Lock()
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def timed(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await one(p, lock, i)
            latencies.append((time.perf_counter() - t) * 1000)

    try:
        for i in range(50):  # warm-up: metadata, producer id, transaction coordinator
            await one(p, lock, i)
        start = time.perf_counter()
        await asyncio.gather(*(timed(i) for i in range(n)))
        return latencies, n / (time.perf_counter() - start)
    finally:
        await p.stop()


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=20)
    args = ap.parse_args()
    with local_kafka() as (cfg, _, _):
        print(f"{'mode':<6} {'sessions':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'msg/s':>8}")
        for conc in (1, args.concurrency):
            for kind in ("plain", "txn"):
                lat, rate = asyncio.run(run(cfg, kind, args.messages, conc))
                print(f"{kind:<6} {conc:>8} {_pct(lat, 50):>8.1f} {_pct(lat, 95):>8.1f} {_pct(lat, 99):>8.1f} "
                      f"{rate:>8.0f}")


if __name__ == "__main__":
    main()
