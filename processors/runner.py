"""The processor process: a faust-streaming worker whose one agent feeds mail.received through the pipeline.

Reads: `mail.received` (consumer group `mailgate-processor`; replicas share its partitions). Writes: the pipeline's
Outputs, and `DeadLettered` to `mail.dlq` for a record that does not decode or whose processing fails permanently.
faust commits an offset only after the agent finished the event and its producer was flushed (at least once);
egress suppresses the duplicates a crash can cause.
Serves the stage's metrics endpoint (`/readyz` answers 200 once faust assigned the group's partitions).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import faust

from mailgate.core import kafka, metrics, topics
from mailgate.core.config import Config
from mailgate.core.deadletter import decode_or_dead_letter
from mailgate.core.live_config import LiveConfig
from mailgate.core.runtime import use_fast_loop_policy
from mailgate.mail.directory.purge import follow_purges
from mailgate.mail.outputs import Output
from processors.pipeline import Pipeline
from schemas import MessageReceived

log = logging.getLogger("mailgate.processor")


def build_app(cfg: Config) -> faust.App:
    datadir = cfg.local_broker.home / "faust"  # faust wants a data dir even without tables
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        "mailgate-processor",
        **kafka.faust_settings(cfg, f"mailgate-processor-{cfg.node_name}"),
        key_serializer="raw", value_serializer="raw",
        topic_allow_declare=False, topic_disable_leader=True,
        web_enabled=False, processing_guarantee="at_least_once",
        producer_linger=0.005, producer_max_batch_size=1024 * 1024,
        broker_commit_every=100, broker_commit_interval=1.0,
        # A replica killed without leaving the group holds up a rebalance until its session expires.
        broker_session_timeout=10.0, broker_heartbeat_interval=2.0, broker_rebalance_timeout=20.0,
        consumer_auto_offset_reset="earliest", stream_wait_empty=False,
        datadir=str(datadir),
    )
    received = app.topic(topics.RECEIVED, key_type=bytes, value_type=bytes, internal=False)
    pipeline = Pipeline(cfg, cfg.node_name)
    out_topics: dict[str, faust.TopicT] = {}

    def topic(name: str) -> faust.TopicT:
        if name not in out_topics:
            out_topics[name] = app.topic(name, key_type=bytes, value_type=bytes, internal=False)
        return out_topics[name]

    config_loaded = asyncio.Event()  # set once mail.config was read: route nothing with the file's gateways

    @app.agent(received)
    async def process(stream):
        await config_loaded.wait()
        async for event in stream.events():
            record, dead = decode_or_dead_letter(event.message, MessageReceived, cfg.node_name)
            if dead is not None:
                metrics.PROCESSOR_MESSAGES.labels("dead_lettered").inc()
                await emit(topic, [Output(topics.DLQ, "", dead)])
                continue
            outputs = await pipeline.handle(record)
            await emit(topic, outputs)
            metrics.observe_pipeline(outputs)

    live = LiveConfig(cfg, "processor")  # the process's one mail.config follower: gateways and cache purges
    follow_purges(live, lambda: pipeline.directories, "processor", lambda: pipeline.domain_lists)
    pipeline.follow(live.following)

    @app.task
    async def follow_config() -> None:
        try:
            pipeline.reconfigure(await live.start())
            live.on_change(pipeline.reconfigure)
        finally:
            config_loaded.set()

    serve_metrics(app, cfg, pipeline)
    return app


async def emit(topic: Callable[[str], faust.TopicT], outputs: list[Output]) -> None:
    """Hand each output, its Kafka headers too, to faust's producer for its topic (`topic(name)`), in order."""
    for out in outputs:
        await topic(out.topic).send(**out.kafka_fields())


def serve_metrics(app: faust.App, cfg: Config, pipeline: Pipeline) -> None:
    """The stage's /metrics, /healthz and /readyz (ready once faust assigned the group's partitions), served on
    faust's event loop; faust's own web server is off."""
    assigned = False

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust's stubs want a `signal` keyword
    async def on_assigned(sender, assigned_partitions, **kwargs) -> None:
        nonlocal assigned
        assigned = True

    endpoint = metrics.MetricsServer("processor", cfg.metrics, ready=lambda: assigned and not app.should_stop)
    metrics.DIRECTORY_CACHES["processor"].watch(lambda: pipeline.verify.directories)
    metrics.DOMAIN_LISTS["processor"].watch(lambda: pipeline.domain_lists)

    @app.task
    async def serve() -> None:
        await endpoint.start()
        try:
            await asyncio.Event().wait()
        finally:
            await endpoint.close()


def run(cfg: Config) -> None:
    use_fast_loop_policy()  # before faust makes its loops
    app = build_app(cfg)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False,
                          override_logging=False)
    worker.execute_from_commandline()
