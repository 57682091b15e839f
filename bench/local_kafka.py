"""A throw-away Apache Kafka broker for the micro-benchmarks (bench/publish_txn.py, bench/delivered_index.py,
bench/index_follow.py).

Starts mailgate's local broker (mailgate.ops.kafka.local_broker, jars from .mailgate/kafka-libs) on free loopback ports under a
temporary directory, creates the declared topics, and stops it (and removes the directory) on exit.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailgate.core import kafka  # noqa: E402
from mailgate.core.config import Config, parse_config  # noqa: E402
from mailgate.ops.kafka import local_broker as broker  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_kafka(extra: dict | None = None, keep: bool = False) -> Iterator[tuple[Config, dict, Path]]:
    """Yields (config, config data, work dir) of a running single-node broker with mailgate's topics."""
    workdir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    port, controller = _free_port(), _free_port()
    data = {"node_name": "bench",
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"], "partitions": 2},
            "local_broker": {"home": str(workdir / "broker"), "libs": str(ROOT / ".mailgate" / "kafka-libs"),
                             "port": port, "controller_port": controller, "heap": "-Xms256m -Xmx768m"},
            "metrics": {"ingress_port": 0, "processor_port": 0, "egress_port": 0}}
    for section, values in (extra or {}).items():
        data[section] = {**data.get(section, {}), **values}
    cfg = parse_config(data)
    broker.start(cfg)
    try:
        asyncio.run(kafka.ensure_topics(cfg))
        yield cfg, data, workdir
    finally:
        broker.stop(cfg)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
