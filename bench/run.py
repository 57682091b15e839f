"""mailgate against Postfix on the same machine, same workload, same downstream sink, in one run.

Usage: python bench/run.py [--quick] [--messages N] [--only 5k,100k,...] [--skip-postfix] [--py-spy STAGE]
       python bench/run.py --paced 20,250 [--paced-seconds 30]   (latency under a steady load, mailgate only)

Starts (all on free 127.0.0.1 ports, all under one temporary directory, all stopped at the end):
  * its own Apache Kafka broker (mailgate.ops.kafka.local_broker, jars from .mailgate/kafka-libs) and mailgate's topics;
  * per workload, a downstream sink (`smtp-sink -c`, or bench/slow_sink.py for the slow-downstream workloads);
  * per workload, mailgate's stages as processes (`python -m mailgate.ops.cli ingress|processor|egress`) with one
    Domain Forward gateway for example.test whose primary is the sink;
  * once, a private Postfix instance (`postfix -c DIR`, own queue dir, relayhost = the sink, no local delivery).
Each workload is `smtp-source -s SESSIONS -m N -l SIZE [-r RCPTS]` against mailgate, then against Postfix.
The scanning workloads (5k-av, 1m-av; bench/scan.py) send a message file (`-F`) with antivirus on, against one clamd
(tests/support/clamd.py) and a second Postfix whose smtpd asks Debian's clamav-milter; clamd's CPU is counted for both.
Measured: accept rate (smtp-source wall time), end-to-end rate (until the sink counted N), mailgate latency
accept -> downstream 250 from MessageDelivered events, peak RSS and CPU seconds per 1,000 messages per process.
With --paced RATES, instead: per rate, fresh stages and a fast sink, `rate` msg/s of 5 KB for --paced-seconds
(bench/paced.py: a new connection per message, each started on schedule), then accept -> delivered and per-stage
latency percentiles from the events, and the same exactly-once check.
Prints a table and writes bench-results.json into the work directory (path printed at the end).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from mailgate.ops.kafka import local_broker as broker  # noqa: E402
from bench import paced, scan  # noqa: E402
from bench.peers import RCPT, SENDER, Postfix, Sink, Workload, free_port, smtp_source  # noqa: E402
from tests.support.clamd import Clamd  # noqa: E402
from bench.procstats import RssPoller, cpu_s, status_kb, tree_cpu_s  # noqa: E402
from bench.sink_view import describe, sink_view  # noqa: E402

from mailgate.core import kafka, topics
from mailgate.ops.audit.reader import read_topic  # noqa: E402
from mailgate.core.config import Config, parse_config  # noqa: E402

LIBS = ROOT / ".mailgate" / "kafka-libs"
WARMUP = 20


WORKLOADS = [
    Workload("5k", 5000, 20000, 2000),
    Workload("100k", 100_000, 3000, 500),
    Workload("1m", 1_000_000, 300, 60),
    Workload("5k-r10", 5000, 3000, 500, rcpts=10),
    Workload("slow-e1", 5000, 2000, 400, slow_ms=50, egress_replicas=1),
    Workload("slow-e2", 5000, 2000, 400, slow_ms=50, egress_replicas=2),
    Workload("slow-e4", 5000, 2000, 400, slow_ms=50, egress_replicas=4),
    # virus scanning on (bench/scan.py): mailgate's processor asks clamd; Postfix's smtpd asks clamav-milter
    Workload("5k-av", 5000, 3000, 500, scan=True),
    Workload("1m-av", 1_000_000, 300, 60, scan=True),
]


# ---------------------------------------------------------------- mailgate

def apply_settings(data: dict, settings: list[str]) -> None:
    """`--set SECTION.KEY=VALUE` (VALUE read as YAML) into the bench's configuration, for A/B runs of a setting."""
    for item in settings:
        path, sep, value = item.partition("=")
        if not sep or not path:
            sys.exit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        *parents, leaf = path.split(".")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(value)


class Mailgate:
    def __init__(self, workdir: Path, sink_port: int, settings: list[str] | None = None) -> None:
        self.workdir = workdir
        self.settings = settings or []
        self.kafka_port, self.controller_port = free_port(), free_port()
        self.smtp_port = free_port()
        self.sink_port = sink_port
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.cfg: Config | None = None
        self.config_path = workdir / "mailgate.yaml"
        self.write_config()

    def write_config(self, antivirus: dict | None = None) -> None:
        """The bench's configuration; with `antivirus`, that section (the scanning workloads), else none."""
        data = {
            "node_name": "bench",
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{self.kafka_port}"], "partitions": 4},
            "local_broker": {"home": str(self.workdir / "broker"), "libs": str(LIBS), "port": self.kafka_port,
                             "controller_port": self.controller_port, "heap": "-Xms512m -Xmx1g",
                             "jit": "full"},  # as examples/mailgate.yaml: a broker under sustained load
            "ingress": {"listen_host": "127.0.0.1", "listen_port": self.smtp_port, "hostname": "gw.bench.test",
                        "max_message_bytes": 26214400,
                        # Postfix exempts $mynetworks (127.0.0.0/8 here) from its per-client limits; so does the bench
                        "client_connection_count_limit": 0},
            # any free port for each stage's endpoint: the fixed defaults (9101-9104) belong to a gateway
            # started by scripts/run-gateway or a test on this machine
            "metrics": {"ingress_port": 0, "processor_port": 0, "egress_port": 0, "tracker_port": 0},
            "delivery": {"retry_schedule_s": [60, 300], "helo_name": "gw.bench.test"},
            "inbound_gateways": [{
                "name": "primary", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                "primary_port": self.sink_port,
                "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}],
        }
        if antivirus:
            data["antivirus"] = antivirus
        apply_settings(data, self.settings)
        self.cfg = parse_config(data)
        self.config_path.write_text(yaml.safe_dump(data))

    def start_broker(self) -> int:
        st = broker.start(self.cfg)
        asyncio.run(kafka.ensure_topics(self.cfg))
        return st.pid

    def stop_broker(self) -> None:
        broker.stop(self.cfg)

    def start_stage(self, stage: str, ready: str | None) -> subprocess.Popen:
        n = len(self.procs.get(stage, []))
        log = self.workdir / f"{stage}-{n}-{time.monotonic_ns()}.log"
        with open(log, "ab") as fh:
            p = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", stage, "--config", str(self.config_path)],
                                 stdout=fh, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
        self.procs.setdefault(stage, []).append(p)
        if ready:
            deadline = time.monotonic() + 90
            while ready not in log.read_text(errors="replace"):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{stage} not ready: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        return p

    def start_stages(self, egress_replicas: int) -> None:
        self.start_stage("processor", None)
        for _ in range(egress_replicas):
            self.start_stage("egress", "egress consuming")
        self.start_stage("ingress", "connected to Kafka")

    def pids(self) -> dict[str, int]:
        return {f"{stage}{i if len(ps) > 1 else ''}": p.pid for stage, ps in self.procs.items()
                for i, p in enumerate(ps)}

    def stop_stages(self) -> None:
        for ps in self.procs.values():
            for p in ps:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
        for ps in self.procs.values():
            for p in ps:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        self.procs.clear()

    def events_since(self, since_ms: int) -> list:
        async def read() -> list:
            return [e async for _, e in read_topic(self.cfg, topics.EVENTS, since_ms=since_ms)]
        return asyncio.run(read())


# ---------------------------------------------------------------- one workload

@dataclass
class Result:
    system: str
    workload: str
    messages: int
    accept_s: float = 0.0
    delivered_s: float | None = None
    sink_count: int = 0
    errors: str = ""
    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    check: str = ""
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    load: str = ""
    sink_view: dict[str, dict[str, float]] = field(default_factory=dict)


def pct(sorted_vals: list[int], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    return float(sorted_vals[min(len(sorted_vals) - 1, int(round(p / 100 * (len(sorted_vals) - 1))))])


def timeout_for(w: Workload, n: int) -> float:
    return 60 + n * (0.05 if w.size < 50_000 else 0.2 if w.size < 500_000 else 1.0) + (n * w.slow_ms / 1000)


def run_mailgate(mg: Mailgate, broker_pid: int, w: Workload, n: int, py_spy: str | None,
                 clamd: Clamd | None = None) -> Result:
    """One workload through fresh stages; with `clamd` (a scanning workload) antivirus is on and clamd's CPU counts."""
    res = Result("mailgate", w.name, n)
    t0 = time.monotonic()
    mg.write_config(scan.antivirus_settings(clamd.port) if clamd else None)
    message = scan.message_file(mg.workdir, w.name, w.size) if w.scan else None
    sink = Sink(mg.workdir, mg.sink_port, w.slow_ms)
    try:
        mg.start_stages(w.egress_replicas)
        # Warm-up: the processor (faust) is ready when it was assigned partitions; prove the whole path works.
        _, errs = smtp_source(mg.smtp_port, w, WARMUP, sessions=2, message_file=message)
        if sink.wait(WARMUP, 120) is None:
            raise RuntimeError(f"warm-up not delivered ({sink.count()}/{WARMUP}); {errs}")
        time.sleep(1)
        base = sink.count()
        pids = {**mg.pids(), "broker": broker_pid, **({"clamd": clamd.proc.pid} if clamd and clamd.proc else {})}
        cpu0 = {k: cpu_s(p) for k, p in pids.items()}
        poller = RssPoller({"broker": broker_pid})
        poller.start()
        spies = []
        for stage in (py_spy or "").split(","):
            if stage:
                pid = mg.pids()[stage]
                out = mg.workdir / f"py-spy-{stage}-{w.name}.txt"
                spies.append(subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", "20", "-r", "50", "-f",
                                               "raw", "-o", str(out), "--nonblocking"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                print(f"  py-spy recording {stage} (pid {pid}) into {out}", flush=True)
        since_ms = int(time.time() * 1000)
        t0 = time.monotonic()
        res.accept_s, res.errors = smtp_source(mg.smtp_port, w, n, message_file=message)
        done = sink.wait(base + n, timeout_for(w, n))
        res.delivered_s = None if done is None else done - t0
        res.sink_count = sink.count() - base
        res.cpu_s = {k: round(cpu_s(p) - cpu0[k], 2) for k, p in pids.items()}
        peaks = poller.stop()
        res.peak_rss_mb = {k: round(status_kb(p, "VmHWM") / 1024, 1) for k, p in mg.pids().items()}
        res.peak_rss_mb["broker"] = round(peaks["broker"] / 1024, 1)
        for spy in spies:
            spy.wait(60)
        time.sleep(1)  # let the last events be appended
        events = mg.events_since(since_ms - 1000)
        check_events(res, events, n, w)
    finally:
        mg.stop_stages()
        sink.stop()
    add_sink_view(res, sink, t0)
    return res


def check_events(res: Result, events: list, n: int, w: Workload) -> None:
    received, delivered, rcpts, dups, deferred = {}, Counter(), Counter(), 0, 0
    scanned: Counter = Counter()
    scan_ms: list[int] = []
    lat = []
    for e in events:
        name = type(e).__name__
        if name == "MessageScanned":
            scanned[e.result] += 1
            scan_ms.append(e.duration_ms)
        if name == "MessageReceived":
            received[e.message_id] = e.occurred_at
        elif name == "MessageDelivered":
            delivered[e.message_id] += 1
            rcpts[e.message_id] += len(e.recipients)
            lat.append(e.occurred_at - e.received_at)
        elif name == "DuplicateSuppressed":
            dups += 1
        elif name in ("DeliveryDeferred", "MessageBounced", "DeadLettered"):
            deferred += 1
    ours = [m for m in received]
    missing = sum(1 for m in ours if delivered[m] == 0)
    twice = sum(1 for m in ours if delivered[m] > 1)
    wrong_rcpts = sum(1 for m in ours if delivered[m] and rcpts[m] != w.rcpts)
    lat.sort()
    res.latency_ms = {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99), "max": pct(lat, 100)}
    ok = (len(ours) == n and missing == 0 and twice == 0 and wrong_rcpts == 0 and res.sink_count == n
          and (not w.scan or scanned == Counter(clean=n)))
    res.check = (f"{'OK' if ok else 'MISMATCH'}: received={len(ours)} delivered-once={len(ours) - missing - twice} "
                 f"missing={missing} twice={twice} wrong-rcpt-count={wrong_rcpts} dup-suppressed={dups} "
                 f"deferred/bounced/dlq={deferred} sink={res.sink_count}"
                 + (" scanned " + ",".join(f"{k}={v}" for k, v in sorted(scanned.items()))
                    + f" (scan p50/p95 {pct(sorted(scan_ms), 50):.0f}/{pct(sorted(scan_ms), 95):.0f} ms)"
                    if w.scan else ""))


def run_postfix(pf: Postfix, workdir: Path, sink_port: int, broker_pid: int, w: Workload, n: int,
                scanners: dict[str, int] | None = None) -> Result:
    """One workload through Postfix; `scanners` (clamav-milter's and clamd's pids) are counted in its CPU."""
    res = Result("postfix+clamav-milter" if w.scan else "postfix", w.name, n)
    t0 = time.monotonic()
    message = scan.message_file(workdir, w.name, w.size) if w.scan else None
    scanners = scanners or {}
    sink = Sink(workdir, sink_port, w.slow_ms)
    try:
        _, errs = smtp_source(pf.port, w, WARMUP, sessions=2, message_file=message)
        if sink.wait(WARMUP, 60) is None:
            raise RuntimeError(f"postfix warm-up not delivered ({sink.count()}/{WARMUP}); {errs}")
        time.sleep(1)
        base = sink.count()
        master = pf.master_pid()
        cpu0 = tree_cpu_s(master)
        scan0 = {k: cpu_s(p) for k, p in scanners.items()}
        poller = RssPoller({}, {"postfix": master})
        poller.start()
        t0 = time.monotonic()
        res.accept_s, res.errors = smtp_source(pf.port, w, n, message_file=message)
        done = sink.wait(base + n, timeout_for(w, n))
        res.delivered_s = None if done is None else done - t0
        res.sink_count = sink.count() - base
        res.cpu_s = {"postfix": round(tree_cpu_s(master) - cpu0, 2),
                     **{k: round(cpu_s(p) - scan0[k], 2) for k, p in scanners.items()}}
        res.peak_rss_mb = {"postfix (all procs, PSS)": round(poller.stop()["postfix"] / 1024, 1)}
        res.check = f"{'OK' if res.sink_count == n else 'MISMATCH'}: sink={res.sink_count}"
    finally:
        sink.stop()
    add_sink_view(res, sink, t0)
    return res


def add_sink_view(res: Result, sink: Sink, t0: float) -> None:
    """The slow sink's view (bench/sink_view.py): delivery rate and MAIL -> final dot while accepting and after."""
    if sink.timings is not None and sink.timings.exists():
        res.sink_view = sink_view(sink.timings, t0, res.accept_s)


def run_paced(mg: Mailgate, broker_pid: int, rate: float, seconds: float) -> Result:
    """One paced-latency run: `rate` msg/s of 5 KB, one connection each, for `seconds`; the events' latencies."""
    w = Workload(f"paced-{rate:g}", 5000, int(rate * seconds), 0)
    res = Result("mailgate", w.name, w.messages)
    sink = Sink(mg.workdir, mg.sink_port, 0)
    try:
        mg.start_stages(1)
        _, errs = smtp_source(mg.smtp_port, w, WARMUP, sessions=2)
        if sink.wait(WARMUP, 120) is None:
            raise RuntimeError(f"warm-up not delivered ({sink.count()}/{WARMUP}); {errs}")
        time.sleep(2)
        base = sink.count()
        pids = {**mg.pids(), "broker": broker_pid}
        cpu0 = {k: cpu_s(p) for k, p in pids.items()}
        since_ms = int(time.time() * 1000)
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        ok, errors, res.accept_s = paced.send_paced("127.0.0.1", mg.smtp_port, rate, seconds, w.size, SENDER, RCPT)
        res.errors = ", ".join(f"{k} x{v}" for k, v in errors.items())
        done = sink.wait(base + ok, timeout_for(w, ok))
        res.delivered_s = None if done is None else done - t0
        res.sink_count = sink.count() - base
        res.cpu_s = {k: round(cpu_s(p) - cpu0[k], 2) for k, p in pids.items()}
        res.peak_rss_mb = {k: round(status_kb(p, "VmHWM") / 1024, 1) for k, p in mg.pids().items()}
        time.sleep(1)
        events = mg.events_since(since_ms - 1000)
        # What got its 250 must be delivered once; a sender that timed out after ingress accepted may have more.
        received = sum(1 for e in events if type(e).__name__ == "MessageReceived")
        res.messages = max(ok, received)
        if res.sink_count < res.messages:
            sink.wait(base + res.messages, 30)
            res.sink_count = sink.count() - base
        check_events(res, events, res.messages, w)
        res.stages_ms = paced.stage_latencies(events)
        res.load = f"{load0:.2f}-{os.getloadavg()[0]:.2f}"
    finally:
        mg.stop_stages()
        sink.stop()
    return res


def print_paced(results: list[Result]) -> str:
    fmt = lambda d: "/".join(f"{d[k]:,.0f}" for k in ("p50", "p95", "p99")) if d else "-"  # noqa: E731
    lines = ["| offered load | msgs | accept -> delivered p50/p95/p99 ms | received -> routed | routed -> attempt "
             "| attempt -> delivered | CPU s per 1k msgs | load avg (start-end) | check |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        st = r.stages_ms
        cpu = ", ".join(f"{k} {v / r.messages * 1000:.1f}" for k, v in r.cpu_s.items())
        lines.append(f"| {r.workload.removeprefix('paced-')} msg/s | {r.messages} | {fmt(st['accept->delivered'])} "
                     f"| {fmt(st['received->routed'])} | {fmt(st['routed->attempt'])} "
                     f"| {fmt(st['attempt->delivered'])} | {cpu} | {r.load} | {r.check} |")
    text = "\n".join(lines)
    print(text)
    return text


# ---------------------------------------------------------------- report

def rate(n: int, s: float | None) -> str:
    return f"{n / s:,.0f}" if s else "timeout"


def print_table(results: list[Result]) -> str:
    lines = ["| workload | msgs | system | accepted msg/s | delivered msg/s | ratio mg/pf (delivered) | "
             "latency p50/p95/p99 ms | CPU s per 1k msgs | peak RSS MB | check |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    by = {(r.workload, r.system.split("+")[0]): r for r in results}
    for r in results:
        other = by.get((r.workload, "postfix"))
        ratio = ""
        if r.system == "mailgate" and other and r.delivered_s and other.delivered_s:
            ratio = f"{(r.messages / r.delivered_s) / (other.messages / other.delivered_s):.2f}"
        lat = "/".join(f"{r.latency_ms[k]:,.0f}" for k in ("p50", "p95", "p99")) if r.latency_ms else "-"
        cpu = ", ".join(f"{k} {v / r.messages * 1000:.1f}" for k, v in r.cpu_s.items())
        if "clamd" in r.cpu_s:  # the scanning workloads: the sum, clamd (and clamav-milter) included
            cpu += f"; total {sum(r.cpu_s.values()) / r.messages * 1000:.1f}"
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
        lines.append(f"| {r.workload} | {r.messages} | {r.system} | {rate(r.messages, r.accept_s)} | "
                     f"{rate(r.messages, r.delivered_s)} | {ratio} | {lat} | {cpu} | {rss} | {r.check} |")
    text = "\n".join(lines)
    print(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages per workload (a few minutes in all)")
    ap.add_argument("--messages", type=int, help="messages for the 5k workload; others scale down with it")
    ap.add_argument("--only", help="comma-separated workload names: " + ",".join(w.name for w in WORKLOADS))
    ap.add_argument("--skip-postfix", action="store_true")
    ap.add_argument("--py-spy", metavar="STAGE", help="comma-separated stages (ingress,processor,egress) to profile "
                    "with py-spy during the first workload (20 s, 50 Hz, raw collapsed stacks into the work "
                    "directory; disturbs the numbers)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a setting of mailgate's bench configuration, VALUE read as YAML (repeatable), e.g. "
                         "--set kafka.compression=none")
    ap.add_argument("--paced", metavar="RATES", help="comma-separated offered loads in msg/s (e.g. 20,250): "
                    "latency under a steady load instead of the throughput workloads (mailgate only)")
    ap.add_argument("--paced-seconds", type=float, default=30, help="how long each paced load runs (default 30)")
    args = ap.parse_args()
    if args.paced:
        return main_paced([float(r) for r in args.paced.split(",")], args.paced_seconds, args.keep, args.set)
    for tool in ("smtp-source", "smtp-sink", "postfix"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH (Debian: apt-get install postfix)")
    chosen = [w for w in WORKLOADS if not args.only or w.name in args.only.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    workdir.chmod(0o755)  # Postfix's daemons run as the postfix user and must reach their queue and data dirs
    sink_port = free_port()
    mg = Mailgate(workdir, sink_port, args.set)
    scanning = any(w.scan for w in chosen)
    pf = None if args.skip_postfix or all(w.scan for w in chosen) else Postfix(workdir, sink_port)
    clamd = scan.start_clamd(workdir) if scanning else None
    milter = scan.ClamavMilter(workdir, clamd.port) if clamd and not args.skip_postfix else None
    pf_av = (Postfix(workdir, sink_port, "postfix-av", {"smtpd_milters": milter.socket, "milter_protocol": "6",
                                                         "milter_default_action": "tempfail"}) if milter else None)
    scanners: dict[str, int] = {}
    results: list[Result] = []
    started = time.monotonic()
    print(f"work dir {workdir}; broker 127.0.0.1:{mg.kafka_port}; mailgate 127.0.0.1:{mg.smtp_port}; "
          f"sink 127.0.0.1:{sink_port}" + (f"; postfix 127.0.0.1:{pf.port}" if pf else "")
          + "".join(f"; --set {s}" for s in args.set), flush=True)
    try:
        broker_pid = mg.start_broker()
        if pf:
            pf.start()
        if milter and pf_av and clamd and clamd.proc:
            scanners = {"clamav-milter": milter.start(), "clamd": clamd.proc.pid}
            pf_av.start()
        for i, w in enumerate(chosen):
            n = w.quick_messages if args.quick else w.messages
            if args.messages:
                n = max(20, int(args.messages * w.messages / WORKLOADS[0].messages))
            print(f"[{time.monotonic() - started:5.0f}s] {w.name}: {n} x {w.size} B, {w.rcpts} rcpt, "
                  f"{w.sessions} sessions, slow={w.slow_ms} ms, egress x{w.egress_replicas}", flush=True)
            r = run_mailgate(mg, broker_pid, w, n, args.py_spy if i == 0 else None, clamd if w.scan else None)
            results.append(r)
            print(f"  mailgate: accept {r.accept_s:.1f}s, delivered {r.delivered_s}, {r.check}"
                  + (f"; smtp-source said: {r.errors}" if r.errors else ""), flush=True)
            if r.sink_view:
                print(f"    sink's view: {describe(r.sink_view)}", flush=True)
            peer = pf_av if w.scan else pf
            if peer:
                r = run_postfix(peer, workdir, sink_port, broker_pid, w, n, scanners if w.scan else None)
                results.append(r)
                print(f"  {r.system}: accept {r.accept_s:.1f}s, delivered {r.delivered_s}, {r.check}"
                      + (f"; smtp-source said: {r.errors}" if r.errors else ""), flush=True)
                if r.sink_view:
                    print(f"    sink's view: {describe(r.sink_view)}", flush=True)
    finally:
        mg.stop_stages()
        for p in (pf, pf_av, milter, clamd):
            if p:
                p.stop()
        mg.stop_broker()
    print(f"\ntotal {time.monotonic() - started:.0f}s; {os.cpu_count()} cores; "
          f"load average now {os.getloadavg()[0]:.2f} (other work on the machine disturbs these numbers)\n")
    print_table(results)
    out = workdir / "bench-results.json"
    out.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    print(f"\nraw results: {out}")
    if not args.keep and not args.py_spy:
        shutil.rmtree(workdir / "broker", ignore_errors=True)
        shutil.rmtree(workdir / "postfix" / "queue", ignore_errors=True)
    return 0


def main_paced(rates: list[float], seconds: float, keep: bool, settings: list[str]) -> int:
    if shutil.which("smtp-sink") is None or shutil.which("smtp-source") is None:
        sys.exit("smtp-sink/smtp-source are not on PATH (Debian: apt-get install postfix)")
    workdir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    mg = Mailgate(workdir, free_port(), settings)
    results: list[Result] = []
    started = time.monotonic()
    print(f"work dir {workdir}; broker 127.0.0.1:{mg.kafka_port}; mailgate 127.0.0.1:{mg.smtp_port}", flush=True)
    try:
        broker_pid = mg.start_broker()
        for rate in rates:
            print(f"[{time.monotonic() - started:5.0f}s] paced {rate:g} msg/s x {seconds:g} s, 5000 B, "
                  f"new connection per message", flush=True)
            r = run_paced(mg, broker_pid, rate, seconds)
            results.append(r)
            print(f"  accept {r.accept_s:.1f}s, delivered {r.delivered_s}, {r.check}"
                  + (f"; sender errors: {r.errors}" if r.errors else ""), flush=True)
    finally:
        mg.stop_stages()
        mg.stop_broker()
    print(f"\ntotal {time.monotonic() - started:.0f}s; {os.cpu_count()} cores; "
          f"load average now {os.getloadavg()[0]:.2f}\n")
    print_paced(results)
    out = workdir / "bench-results.json"
    out.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    print(f"\nraw results: {out}")
    if not keep:
        shutil.rmtree(workdir / "broker", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
