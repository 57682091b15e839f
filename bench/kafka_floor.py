"""The Kafka floor under mailgate's per-message CPU: what aiokafka and the broker alone cost per record, with the
settings the stages use (acks=all, idempotent, zstd, linger 2 ms), on this machine.

Usage: python bench/kafka_floor.py [--records N] [--size BYTES] [--compression zstd|lz4|gzip|none] [--waiters N]

Starts its own broker (free ports, temporary directory), then in this process: produces N records of SIZE bytes
to a 4-partition topic as fast as it can, awaiting each batch of acknowledgements like a stage does, then consumes
them with a consumer group and commits. Prints CPU seconds per 1,000 records of the producer, the consumer and the
broker, each measured alone. mailgate writes about seven records and reads two per 5 KB message (ingress: received
and its event; processor: outbound and events; egress: write-ahead, outcome events, index), so seven produces and
two consumes of this floor are what the Kafka clients and broker cost a message before any mail work.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from mailgate.core.config import parse_config  # noqa: E402
from mailgate.ops.kafka import local_broker as broker  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(bootstrap: str, broker_pid: int, n: int, size: int, compression: str, waiters: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("floor", 4, 1)])
    await admin.close()
    value = (b"x" * 76 + b"\r\n") * (size // 78)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                compression_type=None if compression == "none" else compression, linger_ms=2)
    await producer.start()
    cpu0, b0, t0 = own_cpu(), pid_cpu(broker_pid), time.monotonic()
    if waiters:
        # like ingress: `waiters` sessions, each waiting for its own record's acknowledgement before the next
        async def session(first: int) -> None:
            for i in range(first, n, waiters):
                await (await producer.send("floor", value, key=str(i).encode()))
        await asyncio.gather(*(session(w) for w in range(waiters)))
    else:
        pending = []
        for i in range(n):
            pending.append(await producer.send("floor", value, key=str(i).encode()))
            if len(pending) >= 200:  # about what the stages keep in flight
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    cpu1, b1, t1 = own_cpu(), pid_cpu(broker_pid), time.monotonic()
    await producer.stop()
    consumer = AIOKafkaConsumer("floor", bootstrap_servers=bootstrap, group_id="floor", enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    got = 0
    cpu2, b2, t2 = own_cpu(), pid_cpu(broker_pid), time.monotonic()
    while got < n:
        batch = await consumer.getmany(timeout_ms=500, max_records=200)
        got += sum(len(r) for r in batch.values())
        if batch:
            await consumer.commit()
    cpu3, b3, t3 = own_cpu(), pid_cpu(broker_pid), time.monotonic()
    await consumer.stop()
    k = 1000 / n
    how = f"{waiters} senders each awaiting its own acknowledgement" if waiters else "acknowledgements awaited per 200"
    print(f"{n} records of {len(value)} B, {compression}, acks=all, idempotent, linger 2 ms, {how}:")
    print(f"  produce: {n / (t1 - t0):,.0f} records/s; CPU s per 1,000: producer {(cpu1 - cpu0) * k:.2f}, "
          f"broker {(b1 - b0) * k:.2f}")
    print(f"  consume: {n / (t3 - t2):,.0f} records/s; CPU s per 1,000: consumer {(cpu3 - cpu2) * k:.2f}, "
          f"broker {(b3 - b2) * k:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--compression", default="zstd", choices=["zstd", "lz4", "gzip", "none"])
    ap.add_argument("--waiters", type=int, default=0, help="N concurrent senders, each awaiting its own record's "
                    "acknowledgement (as ingress's sessions do); default: batches of 200")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailgate-floor-"))
    port, controller = free_port(), free_port()
    cfg = parse_config({"kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"]},
                        "local_broker": {"home": str(work / "broker"), "port": port, "controller_port": controller,
                                         "heap": "-Xms512m -Xmx1g"}})
    st = broker.start(cfg)
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine disturbs the numbers)")
        asyncio.run(measure(f"127.0.0.1:{port}", st.pid, args.records, args.size, args.compression,
                            args.waiters))
    finally:
        broker.stop(cfg)


if __name__ == "__main__":
    main()
