"""egress.queue_manager, egress.queue_command_follower and egress.admission without Kafka: what egress does with a
message an operator deleted, held or bounced, or whose destination is suspended, when parked mail is looked at
again, and how admission slots and command acknowledgements wait for each other."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import TopicPartition

from egress.admission import Admission, admitted_per_destination
from egress.outcome import OutcomePolicy
from egress.queue_command_follower import QueueCommandFollower
from egress.queue_manager import HOLD_RESCAN_MS, QueueManager
from mailgate.core import topics
from mailgate.core.config import parse_config
from mailgate.core.ids import now_ms
from schemas import DestinationSuspended, MessageRouted, QueueCommandIssued, Route

CFG = parse_config({"delivery": {"helo_name": "gw.test", "retry_schedule_s": [60]}})


def manager(cfg=CFG, emit=None) -> QueueManager:
    """The queue manager with its follower and admission; no delivery (nothing here is attempted)."""
    admission = Admission(cfg.delivery)
    return QueueManager(cfg, QueueCommandFollower(cfg, emit, admission.running), admission, None, emit)


def control() -> tuple[QueueManager, list]:
    written: list = []

    async def emit(outputs) -> None:
        written.extend(outputs)

    return manager(emit=emit), written


def order(command: str, mid: str = "M1") -> QueueCommandIssued:
    return QueueCommandIssued(command_id="C1", occurred_at=now_ms(), node="cli", command=command, message_id=mid,
                              operator="olga", reason="left the company")


def routed(occurred_at: int | None = None) -> MessageRouted:
    now = now_ms()
    return MessageRouted(message_id="M1", occurred_at=occurred_at or now, node="n", direction="outbound",
                         route=Route(kind="gateway", destination="relay", candidates=["relay"], hosts=[]),
                         mail_from="alice@sender.test", recipients=["bob@far.test"], received_at=now,
                         not_before=now, expires_at=now + 60_000, body=b"Subject: hi\r\n\r\nhello\r\n")


def names(outputs) -> list[tuple[str, str]]:
    return [(o.topic, type(o.record).__name__) for o in outputs]


async def test_a_deleted_message_gets_a_terminal_event_and_no_dsn():
    c, written = control()
    c.commands.state.apply(order("delete"))
    _, out = await c.intercept(topics.OUTBOUND, routed(), OutcomePolicy(CFG, "n"))
    assert names(out) == [(topics.EVENTS, "MessageDiscarded")]
    assert out[0].record.reason == "queue_delete" and out[0].record.operator == "olga"
    assert written == []


async def test_a_bounced_message_gets_a_dsn_with_the_reason():
    c, _ = control()
    c.commands.state.apply(order("bounce"))
    _, out = await c.intercept(topics.RETRY_PREFIX + "60s", routed(), OutcomePolicy(CFG, "n"))
    assert (topics.RECEIVED, "MessageReceived") in names(out)
    bounced = [o.record for o in out if type(o.record).__name__ == "MessageBounced"][0]
    assert bounced.reason == "bounced by olga: left the company" and bounced.dsn_message_id
    dsn = [o.record for o in out if o.topic == topics.RECEIVED][0]
    assert b"left the company" in dsn.body


async def test_held_mail_is_parked_once_with_an_event_and_parked_again_silently():
    c, written = control()
    c.commands.state.apply(order("hold"))
    _, out = await c.intercept(topics.OUTBOUND, routed(), OutcomePolicy(CFG, "n"))
    assert names(out) == [(topics.EVENTS, "MessageParked")] and out[0].record.cause == "held"
    assert names(written) == [(topics.HOLD, "MessageRouted")] and written[0].key == "relay"
    _, again = await c.intercept(topics.HOLD, written[0].record, OutcomePolicy(CFG, "n"))
    assert again == [] and len(written) == 2


async def test_a_suspended_destination_parks_its_mail():
    c, written = control()
    c.commands.state.apply(DestinationSuspended(command_id="S1", occurred_at=now_ms(), node="cli", kind="outbound",
                                       name="relay", operator="olga", reason="maintenance"))
    _, out = await c.intercept(topics.OUTBOUND, routed(), OutcomePolicy(CFG, "n"))
    assert out[0].record.cause == "destination_suspended" and out[0].record.destination == "outbound/relay"


async def test_released_mail_does_not_count_the_time_it_was_parked_against_its_lifetime():
    c, _ = control()
    parked = routed(occurred_at=now_ms() - 30_000)  # parked 30 s ago
    again, out = await c.intercept(topics.HOLD, parked, OutcomePolicy(CFG, "n"))
    assert out is None and again.expires_at - parked.expires_at >= 30_000


async def test_parked_records_are_looked_at_again_after_each_change_and_a_suspension_end():
    c, _ = control()
    tp = TopicPartition(topics.HOLD, 0)
    c.commands.changed()
    before = dataclasses.make_dataclass("Rec", ["timestamp"])(c.commands.changed_at - 1)  # parked before the change
    after = dataclasses.replace(before, timestamp=c.commands.changed_at)  # parked again by the pass
    assert c.due_in_ms(tp, before, routed(), now_ms()) == 0
    assert c.due_in_ms(tp, after, routed(), now_ms()) == HOLD_RESCAN_MS
    generation = c.commands.generation
    c.commands.state.apply(DestinationSuspended(command_id="S1", occurred_at=now_ms(), node="cli", kind="domain",
                                       name="far.test", operator="olga", reason="x", until=now_ms() + 200))
    c.commands.changed()
    deadline = asyncio.get_running_loop().time() + 5
    while c.commands.generation < generation + 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)  # the suspension's own end is scheduled: a change without a command
    assert c.commands.generation == generation + 2 and c.due_in_ms(tp, after, routed(), now_ms()) == 0
    await c.commands.close()


async def test_parked_mail_expires_only_when_configured():
    cfg = parse_config({"delivery": {"helo_name": "gw.test", "retry_schedule_s": [60], "parked_mail_expires": True}})

    async def emit(outputs) -> None:
        pass

    c = manager(cfg, emit)
    c.commands.state.apply(order("hold"))
    old = dataclasses.replace(routed(), expires_at=now_ms() - 1)
    assert c.urgent(old)  # looked at now, not when a command next comes
    _, out = await c.intercept(topics.HOLD, old, OutcomePolicy(cfg, "n"))
    assert "MessageExpired" in [n for _, n in names(out)]
    default, _ = control()
    default.commands.state.apply(order("hold"))
    assert not default.urgent(old)
    _, out = await default.intercept(topics.HOLD, old, OutcomePolicy(CFG, "n"))
    assert out == []  # parked again: by default the time held does not count


async def test_slots_given_back_after_the_session_admit_the_next_message_while_commands_still_wait_for_them():
    """Egress gives a destination's slot back when a message's SMTP session is over, before its outcome is
    appended: the next message may start, and a command is acknowledged only once every admitted one finished."""
    c, written = control()
    slots = admitted_per_destination(CFG.delivery)
    assert slots > CFG.delivery.concurrency_per_destination  # a few wait at the session pool, decided
    sessions_over, outcome_appended = asyncio.Semaphore(0), asyncio.Event()

    async def delivering() -> None:
        async with c.admission.admit("relay") as give_back_slot:
            give_back_slot()  # the session is over; the outcome is still being appended
            sessions_over.release()
            await outcome_appended.wait()

    tasks = [asyncio.create_task(delivering()) for _ in range(slots)]
    async with asyncio.timeout(2):
        for _ in tasks:
            await sessions_over.acquire()
        async with c.admission.admit("relay"):  # admitted although none of the others has finished
            c.commands._acknowledge([order("hold")])
    await asyncio.sleep(0.05)
    assert names(written) == []  # they still run: no acknowledgement yet
    outcome_appended.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.05)
    assert names(written) == [(topics.EVENTS, "QueueCommandApplied")]


async def test_a_destination_admits_no_more_than_its_slots():
    c, _ = control()
    slots = admitted_per_destination(CFG.delivery)
    held = [c.admission.admit("relay") for _ in range(slots)]
    for h in held:
        await h.__aenter__()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            async with c.admission.admit("relay"):
                pass
    for h in held:
        await h.__aexit__(None, None, None)
