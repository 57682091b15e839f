"""The slow sink's view of a run (bench/slow_sink.py's timings): while the load was being accepted, and after.

For each phase: messages whose final dot arrived in it per second, and the mean time from MAIL to the final dot
(the client's MAIL, RCPT and DATA round trips and the body, plus anything the client waits for before DATA).
"""
from __future__ import annotations

import json
from pathlib import Path


def sink_view(path: Path, t0: float, accept_s: float) -> dict[str, dict[str, float]]:
    """Per phase ("accepting": t0 to t0 + accept_s, "after": from then on) `msg_s` and `mail_to_dot_ms`; phases
    with no message are left out. `t0` is the load's start as `time.monotonic()` (the same clock as the sink's)."""
    timings = json.loads(path.read_text())
    cut = t0 + accept_s
    phases: dict[str, list[tuple[float, float]]] = {"accepting": [], "after": []}
    for mail_at, dot_at in timings:
        if dot_at >= t0:
            phases["accepting" if dot_at < cut else "after"].append((mail_at, dot_at))
    view = {}
    for name, ts in phases.items():
        if not ts:
            continue
        span = accept_s if name == "accepting" else max(d for _, d in ts) - cut
        view[name] = {"messages": len(ts), "msg_s": round(len(ts) / span, 1) if span > 0 else float("nan"),
                      "mail_to_dot_ms": round(sum(d - m for m, d in ts) / len(ts) * 1000, 1)}
    return view


def describe(view: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{name}: {v['messages']:.0f} delivered at {v['msg_s']:g} msg/s, MAIL -> final dot "
                     f"{v['mail_to_dot_ms']:g} ms mean" for name, v in view.items())
