"""`mailgate status [--json] [--wait-s S]`: is the pipeline able to move mail? Broker, topics, and each stage's group.

Reads: through the admin client, the cluster's brokers and topics, each stage's consumer group (members and
committed offsets) and the log-end offsets of the topics it reads. Emits: one block of lines (or one JSON object):
the brokers, the declared topics that are missing, per stage its members and lag (records not yet
consumed), and whether the tracking store belongs to this log (`mailgate.ops.tracking.rebuild.store_status`).
Exit status 0 when Kafka answers, every declared topic exists, every stage group has a member and the tracking
store (if any) belongs to this log; 1 otherwise; 4 when Kafka cannot be reached.
"""
from __future__ import annotations

from mailgate.ops.cli import command

import argparse
import asyncio
import json

from aiokafka import TopicPartition

from mailgate.core import topics
from mailgate.core.config import Config
from mailgate.core.topics import declared_topics
from mailgate.ops.cli import exits
from mailgate.ops.kafka.admin import admin_client, committed, end_offsets, group_members, partition_counts

GROUPS = {"processor": ("mailgate-processor", [topics.RECEIVED]),
          "egress": ("mailgate-egress", None)}
"""Stage → (consumer group, topics it consumes; None: the outbound topic and every retry tier). Ingress has no
group: it is seen by the SMTP port and its /readyz."""


def _group_topics(cfg: Config, stage: str) -> list[str]:
    group_topics = GROUPS[stage][1]
    if group_topics is not None:
        return group_topics
    return [topics.OUTBOUND] + [topics.retry_topic(d) for d in sorted(set(cfg.delivery.retry_schedule_s))]


async def gather(cfg: Config, wait_s: float) -> dict:
    """The status as one dict (the --json output)."""
    declared = [s.name for s in declared_topics(cfg)]
    async with admin_client(cfg, wait_s) as admin:
        brokers = [f"{b.host}:{b.port}" for b in admin._client.cluster.brokers()]
        existing = set(await admin.list_topics())
        counts = await partition_counts(admin, [t for t in declared if t in existing])
        stages = {}
        for stage, (group, _) in GROUPS.items():
            state, members = await group_members(admin, group)
            offsets = await committed(admin, group)
            tps = [TopicPartition(t, p) for t in _group_topics(cfg, stage) if t in counts for p in range(counts[t])]
            stages[stage] = {"group": group, "state": state, "members": members, "tps": tps, "offsets": offsets}
    ends = await end_offsets(cfg, [tp for s in stages.values() for tp in s["tps"]])
    for s in stages.values():
        tps, offsets = s.pop("tps"), s.pop("offsets")
        s["lag"] = sum(max(0, ends.get(tp, 0) - offsets.get(tp, 0)) for tp in tps)
    from mailgate.ops.tracking.rebuild import store_status
    return {"kafka": {"reachable": True, "brokers": brokers},
            "topics": {"declared": len(declared), "missing": [t for t in declared if t not in existing]},
            "stages": stages, "tracking": await store_status(cfg)}


def healthy(st: dict) -> bool:
    return (not st["topics"]["missing"] and all(s["members"] for s in st["stages"].values())
            and not (st.get("tracking") or {}).get("mismatch"))


def render(st: dict) -> str:
    lines = [f"kafka: reachable, brokers {', '.join(st['kafka']['brokers'])}"]
    t = st["topics"]
    lines.append(f"topics: {t['declared'] - len(t['missing'])}/{t['declared']} declared topics exist"
                 + (f"; missing: {', '.join(t['missing'])} (run `mailgate topics`)" if t["missing"] else ""))
    for stage, s in st["stages"].items():
        who = ", ".join(f"{m['client_id']}@{m['host']}" for m in s["members"]) or "none"
        lines.append(f"{stage}: group {s['group']} {s['state']}, {len(s['members'])} member(s) ({who}), "
                     f"lag {s['lag']}")
    t = st.get("tracking")
    if t and t["mismatch"]:
        lines.append(f"tracking store: {t['where']} does not belong to this Kafka log: {t['mismatch']}; "
                     f"run `mailgate tracker --rebuild`")
    elif t:
        lines.append(f"tracking store: {t['where']}, " + (t["note"] if t["rebuilding"] else "matches this log"))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    st = asyncio.run(gather(command.load(args), args.wait_s))
    print(json.dumps(st) if args.json else render(st))
    return exits.OK if healthy(st) else exits.FAILURE


def register(sub, with_config) -> None:
    s = with_config(sub.add_parser("status", help="broker reachable, topics, each stage's members and lag"))
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--wait-s", type=float, default=0, help="keep trying to reach Kafka this long")
    s.set_defaults(func=cmd_status)
