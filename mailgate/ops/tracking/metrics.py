"""The tracker's metrics (`mailgate tracker`, the message-tracking read model, an operator-side follower of
`mail.events`), in a registry of its own, served by its `MetricsServer`.

Reads: what the tracker reports (events projected, batch times) and its consumer's positions (`sample_lag`).
Emits: `mailgate_tracker_events_projected`, `mailgate_tracker_batch_seconds`, `mailgate_tracker_consumer_lag`,
`mailgate_tracker_log_mismatch` and `mailgate_tracker_rebuild_events_remaining` on the tracker's `/metrics`.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
TRACKER_EVENTS = Counter("mailgate_tracker_events_projected", "mail.events records projected into the tracking "
                         "store (records seen before are not counted again).", registry=REGISTRY)
TRACKER_BATCH_SECONDS = Histogram("mailgate_tracker_batch_seconds", "Time to project one batch (one store "
                                  "transaction).", buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                  registry=REGISTRY)
TRACKER_LAG = Gauge("mailgate_tracker_consumer_lag", "mail.events records not yet projected, per assigned "
                    "partition (end offset minus position), sampled every few seconds.", ["topic", "partition"],
                    registry=REGISTRY)
TRACKER_LOG_MISMATCH = Gauge("mailgate_tracker_log_mismatch", "1 while the tracker refuses to serve because its "
                             "store was built from another log (cluster id, topic id, or a position beyond a "
                             "partition's end; the reason is in its log and `mailgate status`), else 0.",
                             registry=REGISTRY)
TRACKER_REBUILD_REMAINING = Gauge("mailgate_tracker_rebuild_events_remaining", "Events of mail.events a running "
                                  "rebuild of the tracking store has still to project (0 when none runs).",
                                  registry=REGISTRY)
