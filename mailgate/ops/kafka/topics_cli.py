"""`mailgate topics [--fix] [--json] [--wait-s S]`: create the declared topics and report drift from the declaration.

Reads: `declared_topics(config)` and what Kafka has (partition counts, topic configs). Emits: the topics created,
then one line per difference — partitions, retention, compaction, any declared config — and, with `--fix`, the
changes Kafka allows: more partitions, and config values altered to the declared ones. Fewer partitions cannot be
had without re-creating the topic (and losing its records): that drift is reported and left alone.
Exit status 0 when nothing is left drifting, 1 when something is (so a CI or a health check can see it).
"""
from __future__ import annotations

from mailgate.ops.cli import command

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass

from aiokafka.admin import NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from mailgate.core.config import Config
from mailgate.core.topics import TopicSpec, declared_topics
from mailgate.ops.cli import exits
from mailgate.ops.cli.exits import OperatorError
from mailgate.ops.kafka.admin import admin_client, partition_counts, topic_configs


@dataclass
class Drift:
    topic: str
    setting: str
    declared: str
    actual: str
    fixable: bool
    fixed: bool = False

    def line(self) -> str:
        state = "fixed" if self.fixed else ("fix with --fix" if self.fixable else "cannot be fixed in place")
        return f"{self.topic}: {self.setting} is {self.actual}, declared {self.declared} ({state})"


def drift(spec: TopicSpec, partitions: int, configs: dict[str, str]) -> list[Drift]:
    """The differences between one declared topic and what Kafka has."""
    out = []
    if partitions != spec.partitions:
        out.append(Drift(spec.name, "partitions", str(spec.partitions), str(partitions),
                         fixable=partitions < spec.partitions))
    wanted = {"cleanup.policy": "delete", **spec.config}
    for key, value in sorted(wanted.items()):
        if configs.get(key) != value:
            out.append(Drift(spec.name, key, value, str(configs.get(key)), fixable=True))
    return out


def _raise_errors(what: str, results: list[tuple[str, int, str | None]]) -> None:
    """(topic, error code, message) per topic from Kafka; OperatorError naming the first that failed."""
    for topic, code, message in results:
        if code:
            raise OperatorError(f"{what} of {topic} failed: error {code}: {message}")


async def _fix(admin, specs: dict[str, TopicSpec], found: list[Drift]) -> None:
    grow = {d.topic: NewPartitions(int(d.declared)) for d in found if d.setting == "partitions" and d.fixable}
    if grow:
        resp = await admin.create_partitions(grow)
        _raise_errors("adding partitions", [(t[0], t[1], t[2]) for t in resp.topic_errors])
    # AlterConfigs sets a topic's whole override set: give every declared value, not just the drifted ones.
    topics = sorted({d.topic for d in found if d.setting != "partitions"})
    if topics:
        resps = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t,
                                                  configs={"cleanup.policy": "delete", **specs[t].config})
                                   for t in topics])
        _raise_errors("altering configs", [(r[3], r[0], r[1]) for resp in resps for r in resp.resources])
    for d in found:
        d.fixed = d.fixable


async def reconcile(cfg: Config, fix: bool, wait_s: float) -> tuple[list[str], list[Drift]]:
    """(topics created, drift found — marked fixed when --fix changed it)."""
    specs = {s.name: s for s in declared_topics(cfg)}
    async with admin_client(cfg, wait_s) as admin:
        existing = set(await admin.list_topics())
        missing = [s for n, s in specs.items() if n not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(s.name, s.partitions, cfg.kafka.replication_factor,
                                                    topic_configs=s.config) for s in missing])
            except TopicAlreadyExistsError:
                pass
        present = [n for n in specs if n in existing]
        counts = await partition_counts(admin, present)
        configs = await topic_configs(admin, present)
        found = [d for n in present for d in drift(specs[n], counts.get(n, 0), configs.get(n, {}))]
        if fix and any(d.fixable for d in found):
            await _fix(admin, specs, found)
    return [s.name for s in missing], found


def cmd_topics(args: argparse.Namespace) -> int:
    created, found = asyncio.run(reconcile(command.load(args), args.fix, args.wait_s))
    left = [d for d in found if not d.fixed]
    if args.json:
        print(json.dumps({"created": created, "drift": [asdict(d) for d in found], "in_sync": not left}))
    else:
        print("created: " + (", ".join(created) if created else "none (all exist)"))
        for d in found:
            print(d.line())
        if not found:
            print("every topic matches its declaration")
    return exits.OK if not left else exits.FAILURE


def register(sub, with_config) -> None:
    t = with_config(sub.add_parser("topics", help="create the declared topics; report (and --fix) drift"))
    t.add_argument("--fix", action="store_true", help="add partitions and set configs to the declared values")
    t.add_argument("--json", action="store_true", help="one JSON object: created, drift, in_sync")
    t.add_argument("--wait-s", type=float, default=0, help="keep trying to reach Kafka this long (a broker "
                                                            "that is still starting); default: try once")
    t.set_defaults(func=cmd_topics)
