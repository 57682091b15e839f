"""The egress process: builds egress's rooms, starts what they follow, consumes until stopped, then closes them.

One message's way through egress, each room in its own module:
1. egress/consumer.py fetches it (from `mail.outbound`, a `mail.retry.<delay>s` tier or `mail.hold`), runs it in a
   task of its own and, once it is handled, commits its offset (egress/commit_order.py);
2. egress/queue_manager.py decides when it is due and what becomes of it, by the operators' commands that
   egress/queue_command_follower.py follows in `mail.control`, inside one of its destination's admission slots
   (egress/admission.py);
3. egress/delivery.py makes one attempt: the delivered index (egress/delivered_index.py) suppresses what was
   delivered and writes ahead, the route's targets (egress/targets.py) are tried through pooled SMTP sessions
   (egress/pool.py, egress/smtp_session.py), and egress/outcome.py turns the replies into the next facts.

Reads: those topics, `mail.delivered`, `mail.control` and `mail.config` (live configuration: gateways, bounce
settings, DKIM keys). Writes, through one producer whose `emit` returns once Kafka acknowledged every record:
DeliveryAttempted and the outcome's facts to `mail.events`, retry records to their tier, DSNs to `mail.received`,
index records to `mail.delivered`, parked mail to `mail.hold`, tombstones to `mail.control`, undecodable records
to `mail.dlq`. Serves the stage's metrics endpoint (`/readyz` answers 200 while consuming).
"""
from __future__ import annotations

import asyncio
import logging

from egress.admission import Admission
from egress.consumer import RecordConsumer
from egress.delivered_index import DeliveredIndex
from egress.delivery import Delivery
from egress.pool import SessionPool
from egress.queue_command_follower import QueueCommandFollower
from egress.queue_manager import QueueManager
from mailgate.core import kafka, metrics, topics
from mailgate.core.config import Config
from mailgate.core.live_config import LiveConfig
from mailgate.core.runtime import run_until_stopped
from mailgate.mail.outputs import Output, append

log = logging.getLogger("mailgate.egress")


def in_topics(cfg: Config) -> list[str]:
    """What egress consumes: new mail, every retry tier, and mail set aside by queue control."""
    return [topics.OUTBOUND] + [topics.retry_topic(d) for d in sorted(set(cfg.delivery.retry_schedule_s))] \
        + [topics.HOLD]


class Egress:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.producer = kafka.producer(cfg, f"mailgate-egress-{cfg.node_name}")
        self.index = DeliveredIndex(cfg)
        self.admission = Admission(cfg.delivery)
        self.pool = SessionPool(cfg.delivery, self.admission)
        self.delivery = Delivery(cfg, self.index, self.pool, self.emit)
        self.commands = QueueCommandFollower(cfg, self.emit, self.admission.running)
        self.manager = QueueManager(cfg, self.commands, self.admission, self.delivery, self.emit)
        self.consumer = RecordConsumer(cfg, in_topics(cfg), self.manager, self.index.catch_up)

    async def run(self, stop: asyncio.Event) -> None:
        await self.producer.start()
        live = LiveConfig(self.cfg, "egress")
        self.delivery.reconfigure(await live.start())
        live.on_change(self.delivery.reconfigure)
        await self.index.start()
        await self.commands.start()
        self.commands.on_change(self.consumer.wake)
        try:
            await self.consumer.run(stop)
        finally:
            await self.pool.close()
            await self.index.close()
            await self.commands.close()
            await live.close()
            await self.producer.stop()

    async def emit(self, outputs: list[Output]) -> None:
        """Append every output and wait until Kafka acknowledged all of them."""
        await append(self.producer, outputs)


def run(cfg: Config) -> None:
    async def main(stop: asyncio.Event) -> None:
        egress = Egress(cfg)
        endpoint = metrics.MetricsServer("egress", cfg.metrics, ready=lambda: egress.consumer.consuming)
        await endpoint.start()
        try:
            await kafka.ensure_topics(cfg)
            await egress.run(stop)
        finally:
            await endpoint.close()

    run_until_stopped(main)
