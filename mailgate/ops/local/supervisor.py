"""`mailgate up`: the local broker plus one process per stage and the tracker, run until Ctrl-C, restarted if they die.

Reads: the configuration. Starts: the local broker (unless told not to), the topics, then
`mailgate ingress|processor|egress --config FILE` (core/topology STAGES) and `mailgate tracker --config FILE` (the
message-tracking read model that `trace`, `search`, `queue` and the admin page read) as child processes;
SIGINT/SIGTERM stops them all.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time

from mailgate.ops.kafka import local_broker as broker

from mailgate.core import kafka
from mailgate.core.config import Config
from mailgate.core.topology import STAGES

log = logging.getLogger("mailgate.up")

FOLLOWERS = ("tracker",)
"""Operator-side followers of the log that `mailgate up` runs beside the stages (started first: they accept no mail)."""


def up(cfg: Config, config_path: str, local_broker: bool = True) -> int:
    started = time.monotonic()
    if local_broker:
        st = broker.start(cfg)
        log.info("broker running (pid %s) on 127.0.0.1:%d", st.pid, st.port)
    created = asyncio.run(kafka.ensure_topics(cfg))
    if created:
        log.info("created topics: %s", ", ".join(created))
    procs: dict[str, subprocess.Popen] = {}

    def spawn(stage: str) -> None:
        procs[stage] = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", stage, "--config", config_path])

    for stage in (*FOLLOWERS, *reversed(STAGES)):  # downstream first: ingress, which accepts mail, starts last
        spawn(stage)
    log.info("mailgate up in %.1fs: ingress on %s:%d (Ctrl-C to stop)", time.monotonic() - started,
             cfg.ingress.listen_host, cfg.ingress.listen_port)
    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            for stage, p in list(procs.items()):
                if p.poll() is not None and not stopping:
                    log.warning("%s exited with %s; restarting it", stage, p.returncode)
                    time.sleep(1)
                    spawn(stage)
            time.sleep(0.5)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if local_broker:
            broker.stop(cfg)
        log.info("mailgate stopped")
    return 0
