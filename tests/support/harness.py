"""Scenario-test harness: a real Kafka broker, mailgate stages as real processes, and a recording SMTP primary.

Nothing here is mocked: the broker is Apache Kafka started by `mailgate.ops.kafka.local_broker`, each stage is
`python -m mailgate.ops.cli <stage>` in its own process, and the downstream server is aiosmtpd on a loopback port.
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, syntax

from mailgate.ops.kafka import local_broker as broker

from mailgate.core import kafka
from mailgate.ops.audit.reader import read_events
from mailgate.core.config import Config, parse_config
from tests.support import shared_broker
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / ".mailgate" / "kafka-libs"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class RecordingHandler:
    """Accepts every message (or answers as `script` says) and records what arrived."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.script: Callable[[list[str]], str | None] | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.script is not None:
            reply = self.script(list(envelope.rcpt_tos))
            if reply is not None:
                return reply
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content)))
        return "250 2.0.0 Ok: stored"


class PipeliningHandler(RecordingHandler):
    """A RecordingHandler whose server offers PIPELINING (RFC 2920) in its EHLO reply. aiosmtpd reads commands
    from a buffered stream, so it serves pipelined commands; it just does not say so unless told."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # before the last line ("250 HELP")


DSN_PARAMETERS = ("RET", "ENVID", "NOTIFY", "ORCPT")


class DsnHandler(RecordingHandler):
    """A RecordingHandler whose server offers DSN (RFC 3461) and records the DSN parameters of every MAIL and
    RCPT as sent (`mail_params`, `rcpt_params`: (recipient, words)); the server is a `DsnSMTP`."""

    def __init__(self) -> None:
        super().__init__()
        self.mail_params: list[list[str]] = []
        self.rcpt_params: list[tuple[str, list[str]]] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-DSN", responses[-1]]


class DsnSMTP(SMTP):
    """aiosmtpd's server taking RFC 3461's parameters: recorded on the DsnHandler, then taken off the command so
    aiosmtpd (which knows none of them) does not answer 555."""

    def _take(self, arg: str | None) -> tuple[str | None, list[str]]:
        if arg is None:
            return arg, []
        words = arg.split(" ")
        dsn = [w for w in words if w.partition("=")[0].upper() in DSN_PARAMETERS]
        return " ".join(w for w in words if w not in dsn), dsn

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, dsn = self._take(arg)
        self.event_handler.mail_params.append(dsn)
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, dsn = self._take(arg)
        self.event_handler.rcpt_params.append(((arg or "").partition("<")[2].partition(">")[0], dsn))
        await super().smtp_RCPT(arg)


class DsnController(Controller):
    def factory(self) -> SMTP:
        return DsnSMTP(self.handler, **self.SMTP_kwargs)


class SmtpPrimary:
    """A real SMTP server on loopback that records the mail it receives (the 'primary' or a gateway); with
    `pipelining`, it offers PIPELINING; with `dsn`, DSN (and records the DSN parameters it got: DsnHandler)."""

    def __init__(self, port: int | None = None, pipelining: bool = False, dsn: bool = False,
                 **controller_kw) -> None:
        self.port = port or free_port()
        self.handler = DsnHandler() if dsn else PipeliningHandler() if pipelining else RecordingHandler()
        self.controller = (DsnController if dsn else Controller)(self.handler, hostname="127.0.0.1", port=self.port,
                                                                 **controller_kw)

    def start(self) -> "SmtpPrimary":
        try:
            self.controller.start()
        except BaseException:
            self.controller.loop.close()  # aiosmtpd leaves the loop of a server that failed to start open
            raise
        return self

    def stop(self) -> None:
        """Stop the server, also under open connections (a primary going down while ingress's probe or egress is
        connected): their transports die with the server's loop, and are collected here, where that is expected,
        not as an "unclosed transport" warning in whichever later test the garbage collector happens to run."""
        self.controller.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.1)
        raise AssertionError(f"primary got {len(self.messages)} messages, expected {count} within {timeout_s}s")


@dataclass
class Gateway:
    """One test's whole mailgate: a broker (its own, or the test process's shared one, emptied for it:
    tests/support/shared_broker.py), config file and stage processes. `release()` when done."""

    workdir: Path
    overrides: dict = field(default_factory=dict)
    procs: dict[str, list[subprocess.Popen]] = field(default_factory=dict)
    cfg: Config | None = None
    config_path: Path | None = None
    borrowed: bool = False
    """True while this Gateway uses the shared broker (decided by its first configure())."""
    _prepared: bool = False
    _data: dict = field(default_factory=dict)

    def configure(self, data: dict) -> Config:
        self._data = data
        shared = shared_broker.current()
        if self.cfg is None and shared is not None:  # the first configure() decides
            if shared.can_lend(data, self._configure(data)):
                shared.lend()
                self.borrowed = True
        if self.borrowed:
            assert shared is not None
            self.kafka_port = shared.port
            return self._configure(_merge(data, shared.settings()))
        return self._configure(data)

    def _configure(self, data: dict) -> Config:
        base = {
            "node_name": "test",
            # Uncompressed records, so the session-end secret sweep can read every topic's segments in clear.
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{self.kafka_port}"], "partitions": 2, "compression": "none"},
            "local_broker": {"home": str(self.workdir / "broker"), "libs": str(LIBS),
                             "port": self.kafka_port, "controller_port": self.controller_port},
            "ingress": {"listen_port": self.smtp_port, "hostname": "gw.test"},
            "delivery": {"retry_schedule_s": [1, 2], "helo_name": "gw.test"},
            # Any free port: several stages and tests share this host.
            "metrics": {"ingress_port": 0, "processor_port": 0, "egress_port": 0},
            # Each test's own tracking store (absent unless it runs `mailgate tracker`): never one in the repo.
            "tracking": {"sqlite_path": str(self.workdir / "tracking.sqlite3")},
        }
        merged = _merge(base, data)
        self.cfg = parse_config(merged)
        self.config_path = self.workdir / "mailgate.yaml"
        self.config_path.write_text(yaml.safe_dump(merged))
        return self.cfg

    def __post_init__(self) -> None:
        self.kafka_port = free_port()
        self.controller_port = free_port()
        self.smtp_port = free_port()

    def start_broker(self) -> None:
        shared = shared_broker.current()
        if self.borrowed and shared is not None:
            if not self._prepared:
                shared.prepare()  # may replace the broker: a new data dir
                self._prepared = True
                self.configure(self._data)
            shared.start()
        else:
            broker.start(self.cfg)
        asyncio.run(kafka.ensure_topics(self.cfg))

    def stop_broker(self) -> None:
        broker.stop(self.cfg)

    def release(self) -> None:
        """At the end of the test: stop its own broker, or give the shared one back (running, or as the test left
        it; the next borrower empties or replaces it)."""
        shared = shared_broker.current()
        if self.borrowed and shared is not None:
            shared.give_back()
            self.borrowed = False
        elif self.cfg is not None:
            self.stop_broker()

    def start(self, stage: str, wait: bool = True, release: Path = ROOT) -> subprocess.Popen:
        """Start one stage of the code in `release` (this checkout unless a test made another release's tree)."""
        path = self.workdir / f"{stage}-{len(self.procs.get(stage, []))}.log"
        with open(path, "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", stage, "--config", str(self.config_path)],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=str(release), start_new_session=True)
        self.procs.setdefault(stage, []).append(p)
        if wait and stage in READY_LINES:
            _wait_line(path, READY_LINES[stage], p)
        return p

    def start_all(self) -> None:
        for stage in ("processor", "egress", "ingress"):
            self.start(stage)

    def kill(self, p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if p.poll() is None:
            os.killpg(p.pid, sig)
        p.wait(30)

    def stop_all(self) -> None:
        for procs in self.procs.values():
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
        for procs in self.procs.values():
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        self.procs.clear()

    def events(self, message_id: str | None = None) -> list:
        return asyncio.run(read_events(self.cfg, message_id))

    def event_types(self, message_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events(message_id)]

    def wait_events(self, message_id: str, until: str, timeout_s: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout_s
        types: list[str] = []
        while time.monotonic() < deadline:
            types = self.event_types(message_id)
            if until in types:
                return types
            time.sleep(0.5)
        raise AssertionError(f"no {until} for {message_id} within {timeout_s}s; events: {types}")

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


READY_LINES = {"ingress": "connected to Kafka", "egress": "egress consuming"}
"""The log line after which a stage does its job (the processor is ready when faust was assigned partitions)."""


def _wait_line(path: Path, line: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if line in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"stage exited with {proc.returncode}:\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no '{line}' in {path.name} after {timeout_s}s")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def wait_logged(gateway: Gateway, line: str, stages: tuple[str, ...] = ("ingress", "processor", "egress"),
                timeout_s: float = 60) -> None:
    """Wait until every running process of `stages` has logged `line` (e.g. that it applied a config change)."""
    for stage in stages:
        for i, proc in enumerate(gateway.procs.get(stage, [])):
            _wait_line(gateway.workdir / f"{stage}-{i}.log", line, proc, timeout_s)


def send_marker(port: int, rcpt: str, sender: str = "marker@sender.test") -> str:
    """Send one marker message (its own sender, so counts can leave it out) and return its queue id. A negative
    check ("nothing more arrives") waits for the marker at the downstream instead of sleeping: whatever the thing
    under test would wrongly have caused was queued before the marker on the same path."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail(sender)
        code, reply = s.rcpt(rcpt)
        assert code == 250, reply
        code, reply = s.data(b"From: " + sender.encode() + b"\r\nSubject: marker\r\n\r\nmarker\r\n")
        assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def unconsumed(cfg: Config, group: str, topic_prefix: str) -> int:
    """Records in the topics starting with `topic_prefix` that consumer group `group` has not yet committed past
    (its lag): 0 means every such record was handled. Asks the broker without joining the group."""
    from aiokafka import TopicPartition

    async def lag() -> int:
        c = kafka.consumer(cfg, "test-lag", group)
        await c.start()
        try:
            cluster = await c._client.fetch_all_metadata()  # as mailgate.core.kafka.assign_whole_topic does
            tps = [TopicPartition(t, p) for t in cluster.topics() if t.startswith(topic_prefix)
                   for p in sorted(cluster.partitions_for_topic(t) or ())]
            if not tps:
                return 0
            ends = await c.end_offsets(tps)
            return sum([max(0, ends[tp] - (await c.committed(tp) or 0)) for tp in tps])
        finally:
            await c.stop()
    return asyncio.run(lag())
