"""The message-tracking read model at production scale: projection rate, query latency, store size (not CI).

Usage: python bench/readmodel.py [--messages 1000000] [--store sqlite|postgresql] [--kafka-messages 20000]
                                 [--queries 300] [--workdir DIR]

1. Generates `--messages` messages' worth of mail.events records in the project's real Avro schemas (per message:
   MessageReceived, MessageClassified, MessageRouted, DeliveryAttempted, then MessageDelivered; 4% deferred once
   first, 1% bounced, 0.5% quarantined, 0.3% left waiting), spread over 30 days, 4 partitions keyed by message
   id, and feeds them straight to the projector in batches of 5,000 (one store transaction each, as the tracker
   does): projection rate in events/s for one replica, generation time excluded.
2. Times, `--queries` times each, on that store: trace (a message's events), search by recipient, search by sender
   domain + a one-day range, the queue view; prints p50/p99 in ms, and the store's size on disk.
3. Through a real Kafka broker at `--kafka-messages`: writes those messages' events to mail.events, times one
   `mailgate trace --from-log` scan (what every lookup cost before), then runs the tracker's consumer over them
   from the beginning (projection rate including Kafka fetches).
The PostgreSQL store is a private server in the work dir (Debian's binaries, as the tests start it).
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailgate.ops.tracking import queries  # noqa: E402
from mailgate.ops.tracking.projector import project  # noqa: E402
from mailgate.ops.tracking.store import Store  # noqa: E402
from schemas import (DeliveryAttempted, DeliveryDeferred, MessageBounced, MessageClassified,  # noqa: E402
                     MessageDelivered, MessageQuarantined, MessageReceived, MessageRouted, RecipientResult, Route,
                     ScorerScore, SmtpReply, encode)

PARTITIONS = 4
BATCH = 5000
DAY_MS = 86_400_000


class History:
    """A deterministic stream of (partition, record bytes) for `n` messages ending now, plus samples to query."""

    def __init__(self, n: int, now_ms: int, seed: int = 7) -> None:
        self.n, self.now = n, now_ms
        self.rng = random.Random(seed)
        self.start = now_ms - 30 * DAY_MS
        self.sample_ids: list[str] = []
        self.sample_rcpts: list[str] = []
        self.sample_domains: list[str] = []

    def messages(self):
        rng, step = self.rng, 30 * DAY_MS / self.n
        for i in range(self.n):
            t = int(self.start + i * step)
            mid = f"{t:013d}{i:013d}"
            sender = f"user{rng.randrange(50_000)}@sender{rng.randrange(5_000)}.test"
            rcpts = [f"rcpt{rng.randrange(200_000)}@dom{rng.randrange(200)}.example"
                     for _ in range(1 if rng.random() < .9 else 3)]
            if i % 997 == 0:
                self.sample_ids.append(mid)
                self.sample_rcpts.append(rcpts[0])
                self.sample_domains.append(sender.rpartition("@")[2])
            yield mid, t, sender, rcpts, self.events(mid, t, sender, rcpts)

    def events(self, mid: str, t: int, sender: str, rcpts: list[str]) -> list:
        rng = self.rng
        gw = f"in{rng.randrange(4)}"
        out = [MessageReceived(message_id=mid, occurred_at=t, node="n1", direction="inbound", inbound_gateway=gw,
                               client_address=f"198.51.100.{rng.randrange(1, 255)}", client_helo="mx.sender.test",
                               client_auth=None, tls="TLSv1.3 TLS_AES_256_GCM_SHA384", mail_from=sender,
                               rcpt_to=rcpts, size_bytes=rng.randrange(2_000, 80_000), body_sha256="0" * 64,
                               body=None, header_message_id=f"<{mid}@sender.test>", subject="Quarterly report")]
        score = rng.random() * 12
        level = "none" if score < 3 else "low" if score < 5 else "medium" if score < 10 else "high"
        out.append(MessageClassified(message_id=mid, occurred_at=t + 40, node="n1", level=level, total_score=score,
                                     scores=[ScorerScore(scorer="spamd", score=score, weight=1.0, error=None)],
                                     actions=["standard_headers"]))
        fate = rng.random()
        if fate < .005:
            out.append(MessageQuarantined(message_id=mid, occurred_at=t + 41, node="n1", level="high",
                                          total_score=score, headers=f"From: {sender}\r\nSubject: win\r\n",
                                          routed=None))
            return out
        route = Route(kind="primary", destination=gw, candidates=[gw], hosts=["192.0.2.10:25"])
        out.append(MessageRouted(message_id=mid, occurred_at=t + 45, node="n1", direction="inbound", route=route,
                                 mail_from=sender, recipients=rcpts, received_at=t, not_before=t,
                                 expires_at=t + 5 * DAY_MS, attempt=0, retry_tier=0, force_redeliver=False,
                                 body=None))
        if fate < .008:
            return out  # still waiting
        at = t + 120
        if fate < .05:
            out += [self.attempt(mid, at, rcpts, 451, 1, gw),
                    DeliveryDeferred(message_id=mid, occurred_at=at + 1, node="n1", recipients=rcpts,
                                     reason="451 4.3.0 try later", attempt=1, next_attempt_at=at + 300_000,
                                     retry_topic="mail.retry.300s")]
            at += 300_000
        if fate > .99:
            return out + [self.attempt(mid, at, rcpts, 550, 1, gw),
                          MessageBounced(message_id=mid, occurred_at=at + 1, node="n1", recipients=rcpts,
                                         reason="550 5.1.1 no such user", dsn_message_id=None)]
        return out + [self.attempt(mid, at, rcpts, 250, 1, gw),
                      MessageDelivered(message_id=mid, occurred_at=at + 1, node="n1", recipients=rcpts, gateway=gw,
                                       host="192.0.2.10", reply_text="250 2.0.0 Ok: queued", attempt=1,
                                       received_at=t, forced=False)]

    @staticmethod
    def attempt(mid, at, rcpts, code, n, gw):
        return DeliveryAttempted(message_id=mid, occurred_at=at, node="n1", attempt=n, gateway=gw, host="192.0.2.10",
                                 port=25, tls_version=None, tls_cipher=None, recipients=rcpts,
                                 results=[RecipientResult(recipient=r, reply=SmtpReply(code=code, enhanced_code=None,
                                                                                       text="reply"))
                                          for r in rcpts], error=None, duration_ms=35)

    def records(self):
        """(partition, value, key) per event, in log order."""
        for mid, _, _, _, events in self.messages():
            p = zlib.crc32(mid.encode()) % PARTITIONS
            for e in events:
                yield p, encode(e), mid


def feed(store: Store, history: History) -> tuple[int, float]:
    offsets = [0] * PARTITIONS
    batch, total, spent = [], 0, 0.0
    started = time.monotonic()
    for p, value, _ in history.records():
        batch.append((p, offsets[p], value))
        offsets[p] += 1
        if len(batch) >= BATCH:
            t = time.perf_counter()
            total += project(store, batch)
            spent += time.perf_counter() - t
            batch = []
            if total % 500_000 < BATCH:
                print(f"  {total:,} events projected, {total / spent:,.0f}/s "
                      f"({time.monotonic() - started:.0f}s wall)", file=sys.stderr)
    if batch:
        t = time.perf_counter()
        total += project(store, batch)
        spent += time.perf_counter() - t
    return total, spent


def timed(fn, args_list) -> tuple[float, float]:
    took = []
    for a in args_list:
        t = time.perf_counter()
        fn(a)
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * .99))]


def query_latency(store: Store, h: History, n: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(1)
    ids = [rng.choice(h.sample_ids) for _ in range(n)]
    rcpts = [rng.choice(h.sample_rcpts) for _ in range(n)]
    doms = [(rng.choice(h.sample_domains), h.start + rng.randrange(29) * DAY_MS) for _ in range(n)]
    return {
        "trace": timed(lambda mid: queries.events(store, mid), ids),
        "search by recipient": timed(lambda r: queries.search(store, queries.Search(recipient=r, limit=100)), rcpts),
        "search by sender domain + 1 day": timed(lambda d: queries.search(store, queries.Search(
            domain=d[0], since_ms=d[1], until_ms=d[1] + DAY_MS, limit=100)), doms),
        "queue view": timed(lambda _: queries.waiting(store).shape(h.now), range(max(n // 10, 10))),
    }


def open_store(kind: str, workdir: Path, stack) -> Store:
    if kind == "sqlite":
        store = Store.sqlite(workdir / "tracking.sqlite3")
    else:
        from tests.support.postgres import running_postgres
        store = Store.postgresql(stack.enter_context(running_postgres()))
    store.migrate()
    return store


async def through_kafka(n: int, workdir: Path, kind: str, stack) -> dict:
    """Write n messages' events to a real broker's mail.events; time the log scan and the tracker's catch-up."""
    from mailgate.core import kafka, topics
    from mailgate.core.config import parse_config
    from mailgate.ops.kafka import local_broker as broker
    from mailgate.ops.audit.reader import read_events
    from mailgate.ops.tracking.runner import Tracker
    from tests.support.harness import LIBS, free_port
    port, ctl = free_port(), free_port()
    cfg = parse_config({"node_name": "bench", "kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"],
                                                        "partitions": PARTITIONS},
                        "local_broker": {"home": str(workdir / "broker"), "libs": str(LIBS), "port": port,
                                         "controller_port": ctl}})
    broker.start(cfg)
    stack.callback(broker.stop, cfg)
    await kafka.ensure_topics(cfg)
    h = History(n, int(time.time() * 1000), seed=11)
    producer = kafka.producer(cfg, "bench", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    records = 0
    try:
        pending = []
        for _, value, mid in h.records():
            pending.append(await producer.send(topics.EVENTS, value, key=mid.encode()))
            records += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    t = time.perf_counter()
    found = await read_events(cfg, h.sample_ids[0])
    scan_s = time.perf_counter() - t
    assert found, "the scan found nothing"
    store = open_store(kind, workdir / "k", stack)
    tracker = Tracker(cfg, store)
    stop = asyncio.Event()
    task = asyncio.create_task(tracker.run(stop))
    t = time.perf_counter()
    while sum(store.positions(topics.EVENTS).values()) < records:  # noqa: ASYNC110 (polls the store)
        await asyncio.sleep(0.2)
    catch_up_s = time.perf_counter() - t
    stop.set()
    await task
    store.close()
    return {"records": records, "scan_s": scan_s, "tracker_rate": records / catch_up_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--kafka-messages", type=int, default=20_000, help="0: skip the Kafka part")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--workdir", help="default: a new /tmp/mailgate-readmodel-* (removed at the end)")
    args = ap.parse_args()
    import contextlib
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mailgate-readmodel-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "k").mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not args.workdir:
            stack.callback(shutil.rmtree, workdir, True)
        store = open_store(args.store, workdir, stack)
        stack.callback(store.close)
        h = History(args.messages, int(time.time() * 1000))
        wall = time.monotonic()
        events, spent = feed(store, h)
        print(f"store: {args.store}; {args.messages:,} messages, {events:,} events projected in {spent:.0f}s of "
              f"projection ({time.monotonic() - wall:.0f}s with generation): {events / spent:,.0f} events/s")
        if args.store == "sqlite":
            store.run("PRAGMA wal_checkpoint(TRUNCATE)")
        store.run("ANALYZE")
        print(f"store size on disk: {store.size_bytes() / 1e6:,.0f} MB")
        for name, (p50, p99) in query_latency(store, h, args.queries).items():
            print(f"{name:34} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")
        if args.kafka_messages:
            k = asyncio.run(through_kafka(args.kafka_messages, workdir, args.store, stack))
            per_record = k["scan_s"] / k["records"]
            print(f"through Kafka: {k['records']:,} records; log scan (trace --from-log) {k['scan_s']:.2f} s "
                  f"= {per_record * 1e6:.1f} us/record, so about {per_record * events:,.0f} s per lookup at "
                  f"{events:,} records; tracker catch-up {k['tracker_rate']:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
