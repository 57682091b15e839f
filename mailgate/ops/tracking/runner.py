"""`mailgate tracker`: the process that keeps the tracking store current, as one more follower of mail.events.

Reads: `mail.events` in its own consumer group (`mailgate-tracker`; run several replicas against one PostgreSQL
store and Kafka spreads the partitions over them). On each assignment it seeks every partition to the position
stored beside the rows, so it resumes where the store is, whatever Kafka's committed offsets say (they are
committed too, for `kafka-consumer-groups` to show). Emits: store rows (`projector.project`, one transaction per
batch), `mailgate_tracker_*` metrics with the lag per partition, `/readyz` 200 once partitions are assigned.
`--rebuild` empties the store (schema kept) before starting, so it is projected again from the beginning of the
log; stop the other replicas first. Before consuming, the store is bound to the log (`rebuild.bind`): one built
from another cluster or topic, or with a position beyond a partition's end, is refused (the tracker stays up
without serving: /readyz 503, `mailgate_tracker_log_mismatch` 1, the reason logged and kept in the store for
`mailgate status`, `trace` and `search`) or, with `tracking.on_log_mismatch: rebuild`, rebuilt.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import ConsumerRebalanceListener, TopicPartition

from mailgate.core import kafka, metrics, topics
from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.core.runtime import run_until_stopped
from mailgate.ops.tracking import metrics as tracker_metrics
from mailgate.ops.tracking.log_identity import read_log
from mailgate.ops.tracking.projector import project
from mailgate.ops.tracking.rebuild import Progress, bind
from mailgate.ops.tracking.store import Store

log = logging.getLogger("mailgate.ops.tracking")
GROUP = "mailgate-tracker"


PRUNE_EVERY_S = 600.0
"""How often the tracker forgets what is older than mail.events' retention (kafka.events_retention_s)."""


class _SeekToStore(ConsumerRebalanceListener):
    """On assignment, continue each partition from the store's position (the beginning when it has none)."""

    def __init__(self, tracker: "Tracker") -> None:
        self.tracker = tracker

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        t = self.tracker
        positions = await asyncio.to_thread(t.store.positions, topics.EVENTS)
        for tp in assigned:
            if tp.partition in positions:
                t.consumer.seek(tp, positions[tp.partition])
            else:
                await t.consumer.seek_to_beginning(tp)
        t.assigned = True
        log.info("tracker consuming %s partitions %s from the store's positions", topics.EVENTS,
                 sorted(tp.partition for tp in assigned))


class Tracker:
    def __init__(self, cfg: Config, store: Store, progress: Progress | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.progress = progress
        self.consumer = kafka.consumer(cfg, f"mailgate-tracker-{cfg.node_name}", GROUP,
                                       isolation_level="read_uncommitted", max_poll_interval_ms=600_000)
        self.assigned = False

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer.subscribe([topics.EVENTS], listener=_SeekToStore(self))
        await self.consumer.start()
        sampler = asyncio.create_task(metrics.sample_lag(self.consumer, gauge=tracker_metrics.TRACKER_LAG))
        next_prune = time.monotonic()
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.cfg.tracking.batch_max_records)
                records = [(tp.partition, r.offset, r.value) for tp, recs in batch.items() for r in recs]
                if time.monotonic() >= next_prune:  # between batches: the store is used by one thread at a time
                    await self._prune()
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                if not records:
                    continue
                began = time.monotonic()
                n = await asyncio.to_thread(project, self.store, records)
                tracker_metrics.TRACKER_BATCH_SECONDS.observe(time.monotonic() - began)
                tracker_metrics.TRACKER_EVENTS.inc(n)
                if self.progress and await asyncio.to_thread(self.progress.advance, records):
                    self.progress = None
                await self._commit(batch)
        finally:
            sampler.cancel()
            await self.consumer.stop()

    async def _prune(self) -> None:
        """Keep the store to what mail.events still holds (its retention): bounded, and rebuildable from the log."""
        before = now_ms() - self.cfg.kafka.events_retention_s * 1000
        try:
            gone = await asyncio.to_thread(self.store.prune, before)
        except Exception as err:  # the store busy or down: try again next time, projection goes on
            log.warning("tracking store not pruned: %s", type(err).__name__)
            return
        if gone:
            log.info("tracking store: %d messages older than the log's retention forgotten", gone)

    async def _commit(self, batch) -> None:
        """Kafka's committed offsets follow the store (for monitoring only; the store's positions rule)."""
        offsets = {TopicPartition(tp.topic, tp.partition): recs[-1].offset + 1 for tp, recs in batch.items() if recs}
        try:
            await self.consumer.commit(offsets)
        except Exception as err:  # a rebalance meanwhile: the store already holds the truth
            log.debug("offsets not committed: %s", type(err).__name__)


def run(cfg: Config, rebuild: bool = False) -> None:
    async def main(stop: asyncio.Event) -> None:
        store = await asyncio.to_thread(Store.open, cfg)
        tracker: Tracker | None = None
        endpoint = metrics.MetricsServer("tracker", cfg.metrics, ready=lambda: bool(tracker and tracker.assigned),
                                        registry=tracker_metrics.REGISTRY)
        await endpoint.start()
        try:
            await kafka.ensure_topics(cfg)
            live = await read_log(cfg, topics.EVENTS)
            refused = await asyncio.to_thread(bind, store, live, topics.EVENTS, rebuild,
                                              cfg.tracking.on_log_mismatch)
            if refused:
                await stop.wait()  # not serving: the reason is logged, on /metrics and in the store
                return
            tracker = Tracker(cfg, store, await asyncio.to_thread(Progress.of, store, live))
            await tracker.run(stop)
        finally:
            await endpoint.close()
            store.close()

    run_until_stopped(main)
