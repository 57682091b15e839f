"""CPU seconds and memory of benchmarked processes, from /proc: per process, per process tree, and peak RSS/PSS
sampled in a thread."""
from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, children_too: bool = True) -> float:
    """utime+stime (+ reaped children's cutime+cstime) of `pid`, in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children_too:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU of a process and every live descendant; dead ones are in their parent's cutime once reaped."""
    return cpu_s(pid) + sum(cpu_s(c) for c in descendants(pid))


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages split among the processes sharing them, so a tree's PSS adds up."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class RssPoller(threading.Thread):
    """Polls VmRSS of some pids (and the summed PSS of a process tree) every 0.5 s; keeps the maxima."""

    def __init__(self, pids: dict[str, int], trees: dict[str, int] | None = None) -> None:
        super().__init__(daemon=True)
        self.pids, self.trees = pids, trees or {}
        self.peak_kb: Counter = Counter()
        self.stop_ev = threading.Event()

    def run(self) -> None:
        while not self.stop_ev.is_set():
            for name, pid in self.pids.items():
                self.peak_kb[name] = max(self.peak_kb[name], status_kb(pid, "VmRSS"))
            for name, pid in self.trees.items():
                total = sum(pss_kb(p) for p in [pid, *descendants(pid)])
                self.peak_kb[name] = max(self.peak_kb[name], total)
            self.stop_ev.wait(0.5)

    def stop(self) -> Counter:
        self.stop_ev.set()
        self.join(5)
        return self.peak_kb
