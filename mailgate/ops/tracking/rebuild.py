"""Binding the tracking store to its log, and a rebuild's progress.

Reads: the store's recorded log identity and positions, and the live log's (`log_identity.read_log`). Emits: the
decision at the tracker's start (`bind`: serve, rebuild, or refuse with the reason), the store's `rebuild` state
(JSON: events to project, done, start time) that `trace` and `search` read, progress log lines (events projected of
the total, rate, time left), and the `mailgate_tracker_rebuild_events_remaining` and `_log_mismatch` gauges.
"""
from __future__ import annotations

import json
import logging
import time

from mailgate.ops.tracking import metrics
from mailgate.ops.tracking.log_identity import LogIdentity, mismatch
from mailgate.ops.tracking.store import Store

log = logging.getLogger("mailgate.ops.tracking")
REBUILD_HINT = "rebuild the store with `mailgate tracker --rebuild` (or set tracking.on_log_mismatch: rebuild)"
PROGRESS_EVERY_S = 5.0


def bind(store: Store, live: LogIdentity, topic: str, rebuild: bool, on_mismatch: str) -> str | None:
    """Make the store belong to `live` before projecting: empty it when asked to rebuild or when it belongs to
    another log and `on_mismatch` is rebuild. The reason it was refused (then nothing changed but the recorded
    reason), or None: go on."""
    reason = None if rebuild else mismatch(store.state(), store.positions(topic), live, topic)
    if reason and on_mismatch == "refuse":
        store.set_state({"mismatch": reason})
        metrics.TRACKER_LOG_MISMATCH.set(1)
        log.error("tracker refuses to serve: %s; %s", reason, REBUILD_HINT)
        return reason
    if reason:
        log.warning("tracking store %s: %s; rebuilding it from %s (tracking.on_log_mismatch: rebuild)",
                    store.where, reason, topic)
    if reason or rebuild:
        store.clear()
        log.info("tracking store %s emptied: projecting %s again from the beginning", store.where, topic)
    metrics.TRACKER_LOG_MISMATCH.set(0)
    state = {**live.state(topic), "mismatch": None}
    if not store.positions(topic) and live.events():
        state["rebuild"] = json.dumps({"total": live.events(), "done": 0, "started_ms": int(time.time() * 1000)})
    store.set_state(state)
    return None


class Progress:
    """A rebuild under way: from the beginning to the ends `live` had when it started."""

    def __init__(self, store: Store, live: LogIdentity) -> None:
        self.store = store
        self.ends = {p: e for p, e in live.ends.items() if e > live.beginnings.get(p, 0)}
        self.total = live.events()
        self.done = 0
        self.began = time.monotonic()
        self.last = self.began
        self.reached: dict[int, int] = {}
        metrics.TRACKER_REBUILD_REMAINING.set(self.total)

    @classmethod
    def of(cls, store: Store, live: LogIdentity) -> "Progress | None":
        return cls(store, live) if "rebuild" in store.state() else None

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.began, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else float("inf")
        return (f"tracker rebuild: {self.done:,} of {self.total:,} events projected ({rate:,.0f}/s, "
                f"{'?' if left == float('inf') else f'{left:,.0f} s'} left)")

    def advance(self, records: list[tuple[int, int, bytes]]) -> bool:
        """Count a batch (partition, offset, value); True once the ends of the start are reached (state dropped)."""
        self.done += len(records)
        for part, offset, _ in records:
            self.reached[part] = max(self.reached.get(part, 0), offset + 1)
        finished = all(self.reached.get(p, 0) >= e for p, e in self.ends.items())
        metrics.TRACKER_REBUILD_REMAINING.set(max(0, self.total - self.done))
        now = time.monotonic()
        if finished:
            self.store.set_state({"rebuild": None})
            metrics.TRACKER_REBUILD_REMAINING.set(0)
            log.info("tracker rebuild done: %d events projected in %.1f s", self.done, now - self.began)
        elif now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            log.info("%s", self.line())
            self.store.set_state({"rebuild": json.dumps({"total": self.total, "done": self.done,
                                                         "started_ms": int(time.time() * 1000)})})
        return finished


def reader_note(store: Store) -> str | None:
    """What a reader of the store must say first: it is being rebuilt, or it belongs to another log."""
    state = store.state()
    if "rebuild" in state:
        p = json.loads(state["rebuild"])
        return (f"the tracking store is being rebuilt from mail.events ({p['done']:,} of {p['total']:,} events "
                f"projected)")
    if "mismatch" in state:
        return f"the tracking store does not belong to this Kafka log ({state['mismatch']}); {REBUILD_HINT}"
    return None


async def store_status(cfg) -> dict | None:
    """For `mailgate status`: the tracking store's state against the live log (None when there is no store)."""
    import asyncio

    from mailgate.core import topics
    from mailgate.ops.tracking.log_identity import read_log
    from mailgate.ops.tracking.store import StoreUnavailable
    try:
        store = await asyncio.to_thread(Store.open, cfg, False)
    except StoreUnavailable:
        return None
    try:
        state = await asyncio.to_thread(store.state)
        positions = await asyncio.to_thread(store.positions, topics.EVENTS)
        note = await asyncio.to_thread(reader_note, store)
    finally:
        store.close()
    live = await read_log(cfg, topics.EVENTS, wait_s=5)
    reason = mismatch(state, positions, live, topics.EVENTS) or state.get("mismatch")
    return {"where": store.where, "cluster_id": state.get("cluster_id"), "mismatch": reason,
            "rebuilding": "rebuild" in state, "note": note if reason is None else None}
