"""Egress start-up time and memory against the history in mail.delivered, before and after the bounded index.

Usage: python bench/delivered_index.py [--records 250000,1000000] [--history-days 365] [--before-commit 3558e8d]

For each history size, on a fresh local Kafka broker (bench/local_kafka.py):
  * writes N delivered pairs to mail.delivered (value `1`, key `<26-char id>|<recipient>`, as egress writes them),
    oldest first, with record timestamps spread evenly over the last --history-days (a steady delivery rate);
    the topic is set to plain `cleanup.policy=compact` first, so Kafka deletes nothing and every record stays in
    the log: what is measured is the index's own reading, not broker-side retention;
  * in a fresh Python process each, starts the delivered index as egress does (`DeliveredIndex.start()`, which
    returns once it has caught up with the topic) with the code before (egress/delivered_index.py at
    --before-commit, its 30 s catch-up limit lifted so it can finish) and after this change, and reports the
    start-up time, the entries held, the records read, and the process's RSS after start-up (VmRSS) and peak (VmHWM).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: E402

from mailgate.core import kafka, topics  # noqa: E402
from mailgate.core.config import Config  # noqa: E402

DAY_MS = 86400 * 1000


async def write_history(cfg: Config, n: int, days: int) -> float:
    admin = AIOKafkaAdminClient(**kafka._common(cfg, "bench-admin"))
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topics.DELIVERED,
                                                  {"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    p = kafka.producer(cfg, "bench-history", linger_ms=20, max_batch_size=256 * 1024)
    await p.start()
    t0 = time.monotonic()
    now = int(time.time() * 1000)
    start, step = now - days * DAY_MS, days * DAY_MS / n
    try:
        pending = []
        for i in range(n):
            key = f"01J{i:023d}|user{i % 5000}@example.test".encode()
            pending.append(await p.send(topics.DELIVERED, b"1", key=key, timestamp_ms=int(start + i * step)))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await p.stop()
    return time.monotonic() - t0


MEASURE = r'''
import asyncio, importlib.util, json, sys, time
sys.path.insert(0, ROOT)
from mailgate.core.config import parse_config
import yaml
cfg = parse_config(yaml.safe_load(open(CONFIG)))
if MODULE:
    spec = importlib.util.spec_from_file_location("old_delivered_index", MODULE)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    mod.DeliveredIndex.catch_up.__defaults__ = (3600,)
else:
    import egress.delivered_index as mod
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
async def main():
    before = rss("VmRSS:")
    idx = mod.DeliveredIndex(cfg)
    t = time.monotonic()
    await idx.start()
    took = time.monotonic() - t
    out = {"start_s": round(took, 2), "entries": len(idx.keys), "records_read": getattr(idx, "records_read", None),
           "rss_before_mb": before, "rss_mb": rss("VmRSS:"), "peak_mb": rss("VmHWM:")}
    await idx.close()
    print(json.dumps(out))
asyncio.run(main())
'''


def measure(config_path: Path, module: Path | None) -> dict:
    code = (f"ROOT={str(ROOT)!r}; CONFIG={str(config_path)!r}; MODULE={str(module) if module else ''!r}\n"
            + MEASURE)
    out = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="250000,1000000")
    ap.add_argument("--history-days", type=int, default=365)
    ap.add_argument("--before-commit", default="3558e8d")
    args = ap.parse_args()
    old = Path(tempfile.mkdtemp(prefix="mailgate-old-index-")) / "delivered_index.py"
    old.write_text(subprocess.run(["git", "show", f"{args.before_commit}:egress/delivered_index.py"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout)
    rows = []
    try:
        _run(args, old, rows)
    finally:
        shutil.rmtree(old.parent, ignore_errors=True)
    print(f"{'history':>9} {'code':<7} {'start s':>8} {'entries':>9} {'read':>9} {'RSS MB':>7} {'peak MB':>8}")
    for r in rows:
        print(f"{r['history']:>9} {r['code']:<7} {r['start_s']:>8} {r['entries']:>9} "
              f"{r['records_read'] if r['records_read'] is not None else r['entries']:>9} {r['rss_mb']:>7} "
              f"{r['peak_mb']:>8}")


def _run(args, old: Path, rows: list) -> None:
    from local_kafka import local_kafka
    for n in [int(x) for x in args.records.split(",")]:
        with local_kafka(extra={"kafka": {"partitions": 4}}) as (cfg, data, workdir):
            path = workdir / "mailgate.yaml"
            path.write_text(yaml.safe_dump(data))
            wrote = asyncio.run(write_history(cfg, n, args.history_days))
            print(f"{n} records written in {wrote:.1f}s", file=sys.stderr)
            for label, module in (("before", old), ("after", None)):
                r = measure(path, module)
                rows.append({"history": n, "code": label, **r})
                print(json.dumps(rows[-1]), file=sys.stderr)


if __name__ == "__main__":
    main()
