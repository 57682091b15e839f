"""mail.control stays bounded, against a real broker: an egress replica replaces finished commands with tombstones,
and a later reader of the topic (a replica joining, `mailgate destination list`) folds the same state; a tombstone
that loses the race to an operator's newer command is ignored and that command is written again."""
from __future__ import annotations

import asyncio

import pytest

from egress.queue_command_follower import QueueCommandFollower
from mailgate.core import kafka, topics
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import read_topic
from mailgate.mail.queue_commands import SUPERSEDES
from mailgate.ops.queue.commands import control_state
from schemas import QueueCommandIssued, encode

pytestmark = pytest.mark.scenario

MONTH_MS = 30 * 86_400_000


def cmd(command: str, mid: str, at: int) -> QueueCommandIssued:
    return QueueCommandIssued(command_id=f"C-{mid}-{command}", occurred_at=at, node="cli", command=command,
                              message_id=mid, operator="olga", reason="test")


async def write(cfg, records: list[tuple[str, object, int | None]]) -> None:
    p = kafka.producer(cfg, "test-control")
    await p.start()
    try:
        for key, e, sup in records:
            headers = [(SUPERSEDES, str(sup).encode())] if sup is not None else None
            await (await p.send(topics.CONTROL, None if e is None else encode(e), key=key.encode(), headers=headers))
    finally:
        await p.stop()


async def raw(cfg) -> list[tuple[str, bool, int | None]]:
    out = []
    async for r, _ in read_topic(cfg, topics.CONTROL, client_id="test-control-raw"):
        sup = dict(r.headers or ()).get(SUPERSEDES)
        out.append((r.key.decode(), r.value is None, int(sup) if sup is not None else None))
    return out


async def scenario(cfg) -> None:
    await kafka.ensure_topics(cfg)
    old, recent = now_ms() - MONTH_MS, now_ms()
    await write(cfg, [("message/HELD", cmd("hold", "HELD", old), None),             # 0: stands until released
                      ("message/DONE", cmd("release", "DONE", old), None),          # 1: finished
                      ("message/GONE", cmd("delete", "GONE", old), None),           # 2: finished (a month ago)
                      ("message/NEW", cmd("delete", "NEW", recent), None),          # 3: still needed
                      ("message/RACE", cmd("release", "RACE", old), None),          # 4
                      ("message/RACE", cmd("hold", "RACE", recent), None),          # 5: an operator's newer hold
                      ("message/RACE", None, 4)])                                   # 6: a tombstone aimed at 4
    p = kafka.producer(cfg, "test-egress")
    await p.start()

    async def emit(outputs) -> None:
        futures = [await p.send(o.topic, None if o.record is None else encode(o.record), key=o.key.encode(),
                                headers=list(o.headers) or None) for o in outputs]
        await asyncio.gather(*futures)

    control = QueueCommandFollower(cfg, emit)
    try:
        await control.start()  # loads the topic, then sweeps once
        for _ in range(100):
            if len(await raw(cfg)) >= 10:
                break
            await asyncio.sleep(0.1)
    finally:
        await control.close()
        await p.stop()

    written = (await raw(cfg))[7:]
    assert sorted(written) == sorted([("message/RACE", False, 5),  # the hold written again
                                      ("message/DONE", True, 1), ("message/GONE", True, 2)]), written
    state = await control_state(cfg)  # what a replica starting now folds
    assert {mid: o.command for mid, o in state.orders.items()} == {"HELD": "hold", "NEW": "delete", "RACE": "hold"}
    assert state.rewrites() == [] and state.stale == {}


def test_finished_commands_are_removed_and_a_racing_command_survives(gateway):
    gateway.configure({})
    gateway.start_broker()
    asyncio.run(scenario(gateway.cfg))
