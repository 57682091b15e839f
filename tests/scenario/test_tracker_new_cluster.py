"""The tracking store knows which log it was built from (issue 35): moved to a new Kafka cluster, it is never read as
if it were that cluster's.

A tracker projects broker A's mail.events into a store. The same store is then used with a fresh broker B (another
mail.events topic id, and positions beyond B's ends; the local brokers share a cluster id, see below). With the default `tracking.on_log_mismatch: refuse`, the tracker
refuses to serve (its log line names `mailgate tracker --rebuild`, /metrics shows the mismatch, `mailgate status`
too), and `trace` of a message that is in B's log does not answer "no events": it says why and reads the log;
`search` says why instead of "0 message(s)". With `rebuild`, the tracker empties the store by itself and the
message is found in it.
"""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.scenario.test_tracking import start_tracker, wait_caught_up
from tests.scenario.test_walking_skeleton import inbound_config, queued_id, send
from tests.support.harness import ROOT, Gateway, _wait_line
from tests.support.ports import free_port

pytestmark = pytest.mark.scenario


def mailgate(gw, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gw.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=180)


def configure(gw: Gateway, primary, store, metrics_port: int, on_mismatch: str = "refuse") -> None:
    gw.configure({**inbound_config(primary.port), "metrics": {"tracker_port": metrics_port},
                  "tracking": {"sqlite_path": str(store), "on_log_mismatch": on_mismatch}})


def deliver(gw: Gateway, tag: str) -> str:
    code, reply = send(gw.smtp_port, "bob@example.test", sender=f"{tag}@sender.test")
    assert code == 250, reply
    mid = queued_id(reply)
    gw.wait_events(mid, "MessageDelivered", timeout_s=90)
    return mid


def test_a_store_of_one_cluster_is_refused_by_a_tracker_of_another_then_rebuilt(gateway, primary, tmp_path):
    store = tmp_path / "shared-tracking.sqlite3"
    configure(gateway, primary, store, free_port())
    gateway.start_broker()
    gateway.start_all()
    for n in range(4):  # broker A's log is longer than B's will be: stored positions beyond B's ends too
        deliver(gateway, f"old{n}")
    start_tracker(gateway)
    wait_caught_up(gateway)
    gateway.stop_all()
    gateway.stop_broker()

    (tmp_path / "b").mkdir()
    b = Gateway(tmp_path / "b")
    metrics_port = free_port()
    try:
        configure(b, primary, store, metrics_port)
        b.start_broker()
        b.start_all()
        mid = deliver(b, "new")
        p = b.start("tracker", wait=False)
        _wait_line(b.workdir / "tracker-0.log", "tracker refuses to serve", p)
        line = [x for x in (b.workdir / "tracker-0.log").read_text().splitlines() if "refuses to serve" in x][0]
        # Local brokers are copied from one formatted data dir (mailgate.ops.kafka.local_broker), so A and B share a cluster id:
        # the topic id is what tells their mail.events apart (a real new cluster differs in both).
        assert "the store was built from mail.events topic id" in line, line
        assert "mailgate tracker --rebuild" in line, line
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "mailgate_tracker_log_mismatch 1.0" in metrics
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=10)

        trace = mailgate(b, "trace", mid)
        assert trace.returncode == 0, trace.stdout + trace.stderr
        assert "no events" not in trace.stdout and "MessageDelivered" in trace.stdout
        assert "does not belong to this Kafka log" in trace.stderr and "mailgate tracker --rebuild" in trace.stderr
        search = mailgate(b, "search", "--sender", "new@sender.test")
        assert search.returncode == 1 and "0 message(s)" not in search.stdout
        assert search.stderr.count("\n") == 1 and search.stderr.startswith("mailgate search: the tracking store "
                                                                           "does not belong"), search.stderr
        status = mailgate(b, "status")
        assert status.returncode == 1 and "does not belong to this Kafka log" in status.stdout, status.stdout

        for proc in b.procs["tracker"]:
            b.kill(proc)
        configure(b, primary, store, metrics_port, on_mismatch="rebuild")
        p = b.start("tracker", wait=False)
        _wait_line(b.workdir / "tracker-1.log", "tracker rebuild done", p)
        assert "rebuilding it from mail.events" in (b.workdir / "tracker-1.log").read_text()
        wait_caught_up(b)
        trace = mailgate(b, "trace", mid)
        assert trace.returncode == 0 and "MessageDelivered" in trace.stdout and trace.stderr == "", trace.stderr
        found = mailgate(b, "search", "--sender", "new@sender.test")
        assert found.returncode == 0 and "1 message(s)" in found.stdout, found.stdout + found.stderr
        assert "matches this log" in mailgate(b, "status").stdout
    finally:
        b.stop_all()
        b.stop_broker()
