"""A local three-node Apache Kafka cluster for tests: KRaft, every node both broker and controller, on loopback.

Reads: the jars in `.mailgate/kafka-libs` (fetched by `mailgate.ops.kafka.local_broker.fetch_jars`). Writes, per node, under the
given directory: `node-<id>/server.properties`, its data dir and `kafka.log`. Emits: the client bootstrap list
and the node processes, so that a test can SIGKILL one (`kill`) and find which node leads a partition (`leader`).
Internal topics are replicated 3 ways with min.insync.replicas 2, like mailgate's topics in the tests using it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from mailgate.ops.kafka.local_broker import READY_LINE, _cluster_id
from tests.support.harness import LIBS, free_port

HEAP = ["-Xms192m", "-Xmx384m"]
LOG4J = ("rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
         "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
         "appender.stdout.layout.type = PatternLayout\nappender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
         "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n")


@dataclass
class Node:
    node_id: int
    home: Path
    port: int
    controller_port: int
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "kafka.log"


@dataclass
class Cluster:
    """Three KRaft nodes (ids 1, 2, 3) with `controller.quorum.voters=1@…,2@…,3@…`."""

    workdir: Path
    session_timeout_ms: int = 3000
    """broker.session.timeout.ms: how soon the controller fences a dead broker and moves its leaderships."""
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [Node(i, self.workdir / f"node-{i}", free_port(), free_port()) for i in (1, 2, 3)]

    @property
    def bootstrap(self) -> list[str]:
        return [n.address for n in self.nodes]

    def _props(self, n: Node) -> dict[str, str]:
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        return {
            "process.roles": "broker,controller", "node.id": str(n.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{n.port}",
            "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(n.home / "data"), "num.partitions": "1", "auto.create.topics.enable": "false",
            "default.replication.factor": "3", "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3", "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "3", "share.coordinator.state.topic.min.isr": "2",
            "group.initial.rebalance.delay.ms": "0",
            "broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": str(self.session_timeout_ms),
            "unclean.leader.election.enable": "false",
            "message.max.bytes": str(27 * 1024 * 1024), "replica.fetch.max.bytes": str(27 * 1024 * 1024),
        }

    def _java(self, n: Node, main: list[str]) -> list[str]:
        return ["java", *HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={n.home / 'log4j2.properties'}", "-cp", f"{LIBS}/*", *main]

    def start(self, timeout_s: float = 120) -> "Cluster":
        """Format the three data dirs with one cluster id, start every node, wait until each says it started."""
        cid = _cluster_id()
        formats = []
        for n in self.nodes:
            n.home.mkdir(parents=True, exist_ok=True)
            (n.home / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in self._props(n).items()))
            (n.home / "log4j2.properties").write_text(LOG4J)
            formats.append(subprocess.Popen(
                self._java(n, ["kafka.tools.StorageTool", "format", "-t", cid, "-c",
                               str(n.home / "server.properties")]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for f in formats:
            out, _ = f.communicate(timeout=120)
            if f.returncode != 0:
                raise RuntimeError(f"formatting a node failed:\n{out.decode(errors='replace')[-2000:]}")
        for n in self.nodes:
            self.start_node(n, wait=False)
        for n in self.nodes:
            self._wait_ready(n, 0, timeout_s)
        return self

    def start_node(self, n: Node, wait: bool = True, timeout_s: float = 90) -> None:
        with open(n.log, "ab") as log:
            offset = log.tell()
            n.proc = subprocess.Popen(self._java(n, ["kafka.Kafka", str(n.home / "server.properties")]),
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        if wait:
            self._wait_ready(n, offset, timeout_s)

    def _wait_ready(self, n: Node, offset: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if n.proc.poll() is not None:
                raise RuntimeError(f"node {n.node_id} exited with {n.proc.returncode}; see {n.log}")
            with open(n.log, "rb") as f:
                f.seek(offset)
                if READY_LINE.encode() in f.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"node {n.node_id} did not start within {timeout_s}s; see {n.log}")

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (no controlled shutdown: its leaderships move only when the controller fences it)."""
        n = self.node(node_id)
        if n.proc is not None and n.proc.poll() is None:
            os.killpg(n.proc.pid, signal.SIGKILL)
            n.proc.wait(30)

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                os.killpg(n.proc.pid, signal.SIGTERM)
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(n.proc.pid, signal.SIGKILL)
                n.proc.wait(10)

    async def describe(self, topic: str, timeout_s: float = 30) -> dict[int, tuple[int, list[int]]]:
        """partition -> (leader node id, in-sync replica ids), from the admin client's describe_topics, once the
        answering broker knows the topic and a leader for every partition: a broker that has not yet applied the
        topic's creation answers with no partitions (an empty layout that every check on it would pass)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="test-cluster-admin")
        await admin.start()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                [desc] = await admin.describe_topics([topic])
                layout = {p["partition"]: (p["leader"], sorted(p["isr"])) for p in desc["partitions"]}
                if layout and all(leader >= 0 for leader, _ in layout.values()):
                    return layout
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic} has no leader for every partition after {timeout_s} s: {desc}")
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
