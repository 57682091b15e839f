"""egress.delivery.Delivery.deliver: failover across candidates, duplicate suppression, connection reuse; and the
queue manager's guard that defers a message instead of losing it when delivery raises unexpectedly.

No broker: the rooms are built without their Kafka clients (the delivered index is not started), and the gateways
are real aiosmtpd servers on loopback.
"""
from __future__ import annotations

import pytest

from egress.admission import Admission
from egress.consumer import RecordConsumer
from egress.delivered_index import DeliveredIndex, delivered_key
from egress.delivery import Delivery
from egress.pool import SessionPool
from egress.queue_command_follower import QueueCommandFollower
from egress.queue_manager import QueueManager
from mailgate.core.config import parse_config
from mailgate.core.ids import now_ms
from schemas import MessageRouted, Route
from tests.support.harness import SmtpPrimary, free_port


@pytest.fixture(params=[False, True], ids=["one-command-a-time", "pipelining"])
def server(request):
    """Every test here runs against a server that offers PIPELINING and one that does not."""
    s = SmtpPrimary(pipelining=request.param).start()
    yield s
    s.stop()


def engine(gateways: list[dict]) -> Delivery:
    cfg = parse_config({"node_name": "n1", "outbound_gateways": gateways,
                        "delivery": {"helo_name": "gw.test", "retry_schedule_s": [1]}})
    written: list = []

    async def emit(outputs) -> None:  # the write-ahead records egress appends before DATA
        written.extend(outputs)

    admission = Admission(cfg.delivery)
    e = Delivery(cfg, DeliveredIndex(cfg), SessionPool(cfg.delivery, admission), emit)  # index not started
    e.written = written
    return e


def manager(e: Delivery, emit) -> QueueManager:
    """The queue manager in front of `e`, with no queue commands (every message is attempted)."""
    admission = e.pool.admission
    return QueueManager(e.cfg, QueueCommandFollower(e.cfg, emit, admission.running), admission, e, emit)


def consumer(e: Delivery, emit) -> RecordConsumer:
    """The consumer's in-flight bookkeeping in front of the queue manager, with no Kafka consumer."""
    c = RecordConsumer.__new__(RecordConsumer)
    c.cfg, c.node, c.manager = e.cfg, "n1", manager(e, emit)
    c._in_flight_state()
    return c


def routed(candidates: list[str], rcpts=("bob@far.test",), mid: str = "01MID") -> MessageRouted:
    now = now_ms()
    return MessageRouted(message_id=mid, occurred_at=now, node="n0", direction="outbound",
                         route=Route(kind="gateway", destination=candidates[0], candidates=candidates, hosts=[]),
                         mail_from="alice@sender.test", recipients=list(rcpts), received_at=now, not_before=now,
                         expires_at=now + 3_600_000, attempt=0, retry_tier=0, force_redeliver=False,
                         body=b"Subject: t\r\n\r\nhi\r\n")


def names(outputs) -> list[str]:
    """Event names, and the topic of raw index records; tombstones (clearing a write-ahead record) left out."""
    return [type(o.record).__name__ if not isinstance(o.record, bytes) else o.topic for o in outputs
            if o.record is not None]


async def test_a_refused_gateway_fails_over_to_the_next_candidate(server):
    e = engine([{"name": "down", "address": "127.0.0.1", "port": free_port()},
                {"name": "up", "address": "127.0.0.1", "port": server.port}])
    try:
        out = await e.deliver(routed(["down", "up"]))
    finally:
        await e.pool.close()
    assert names(out) == ["DeliveryAttempted", "DeliveryAttempted", "MessageDelivered", "mail.delivered"]
    first, second = out[0].record, out[1].record
    assert first.gateway == "down" and first.error.startswith("connect: 127.0.0.1:") and first.results == []
    assert second.gateway == "up" and second.error is None and second.results[0].reply.code == 250
    assert out[2].record.gateway == "up" and len(server.messages) == 1
    assert e.health.state("down").consecutive_failures == 1


async def test_recipients_already_delivered_are_suppressed(server):
    e = engine([{"name": "up", "address": "127.0.0.1", "port": server.port}])
    e.index.add(delivered_key("01MID", "done@far.test"))
    try:
        out = await e.deliver(routed(["up"], rcpts=("done@far.test", "new@far.test")))
    finally:
        await e.pool.close()
    assert names(out)[:2] == ["DuplicateSuppressed", "DeliveryAttempted"]
    assert out[0].record.recipients == ["done@far.test"]
    assert [m.rcpt_tos for m in server.messages] == [["new@far.test"]]
    assert delivered_key("01MID", "new@far.test") in e.index


async def test_one_connection_carries_several_messages(server):
    e = engine([{"name": "up", "address": "127.0.0.1", "port": server.port}])
    try:
        for n in range(3):
            out = await e.deliver(routed(["up"], mid=f"01MID{n}"))
            assert "MessageDelivered" in names(out)
        pooled = [s for sessions in e.pool._idle.values() for s in sessions]
        assert len(pooled) == 1 and pooled[0].sent == 3
    finally:
        await e.pool.close()
    assert len(server.messages) == 3


async def test_an_unexpected_error_defers_the_message_instead_of_losing_it():
    e = engine([{"name": "up", "address": "127.0.0.1", "port": free_port()}])
    emitted = []

    async def boom(_routed):
        raise RuntimeError("a bug")

    async def capture(outputs):
        emitted.extend(outputs)

    e.deliver = boom
    await manager(e, capture).handle("mail.outbound", routed(["up"]), None)
    assert names(emitted) == ["DeliveryDeferred", "MessageRouted"]
    assert emitted[0].record.reason == "internal delivery error (see the egress log)"
    assert emitted[1].topic == "mail.retry.1s" and emitted[1].record.attempt == 1


async def test_an_attempt_after_a_crash_mid_delivery_says_the_server_may_get_it_twice(server):
    """Regression: SIGKILL of egress after DATA left no trace; the next replica's attempt must say why a
    duplicate may reach the server (write-ahead record in mail.delivered still 'sending')."""
    e = engine([{"name": "up", "address": "127.0.0.1", "port": server.port}])
    e.index.apply(delivered_key("01MID", "bob@far.test"), b"sending")  # left by a replica that died
    try:
        out = await e.deliver(routed(["up"]))
    finally:
        await e.pool.close()
    attempted = next(o.record for o in out if type(o.record).__name__ == "DeliveryAttempted")
    assert attempted.outcome_unknown_recipients == ["bob@far.test"]
    assert [(o.topic, o.record) for o in e.written] == [("mail.delivered", b"sending")]
    assert "MessageDelivered" in names(out)


async def test_an_attempt_that_does_not_deliver_clears_its_write_ahead_record():
    e = engine([{"name": "down", "address": "127.0.0.1", "port": free_port()}])
    try:
        out = await e.deliver(routed(["down"]))
    finally:
        await e.pool.close()
    assert ("mail.delivered", None) in [(o.topic, o.record) for o in out]
    assert "DeliveryDeferred" in names(out)


async def test_two_copies_of_one_message_in_a_batch_are_delivered_once(server):
    """Regression: a copy the processor wrote again after a crash, landing in the same batch as the original,
    was delivered twice (concurrently, before the index knew of the first)."""
    from aiokafka import TopicPartition
    from aiokafka.structs import ConsumerRecord

    from schemas import encode
    e = engine([{"name": "up", "address": "127.0.0.1", "port": server.port}])
    emitted: list = []

    async def emit(outputs) -> None:
        emitted.extend(outputs)

    e._emit = emit
    r = routed(["up"])
    recs = [ConsumerRecord("mail.outbound", 0, off, 0, 0, b"up#0", encode(r), None, 0, 0, []) for off in (7, 8)]
    tp = TopicPartition("mail.outbound", 0)
    c = consumer(e, emit)
    try:
        c._dispatch(tp, recs)
        await c._settle()
    finally:
        await e.pool.close()
    assert c._lanes[tp].commit_point() == 9 and len(server.messages) == 1
    assert names(emitted).count("MessageDelivered") == 1 and "DuplicateSuppressed" in names(emitted)


async def test_the_index_says_delivered_only_after_the_delivery_is_on_record(server):
    """Regression: MessageDelivered and the index record went to Kafka together and could land in two produce
    requests; a replica killed between them left the index saying "delivered" with no MessageDelivered in the
    audit log, and the survivor's DuplicateSuppressed pointed at nothing. The index record is appended only after
    the facts are acknowledged."""
    e = engine([{"name": "up", "address": "127.0.0.1", "port": server.port}])
    appends: list[list] = []  # each _emit call: appended together, acknowledged before the call returns

    async def emit(outputs) -> None:
        appends.append(list(outputs))

    e._emit = emit
    try:
        await manager(e, emit).handle("mail.outbound", routed(["up"]), None)
    finally:
        await e.pool.close()
    marks, facts, index = appends
    assert [(o.topic, o.record) for o in marks] == [("mail.delivered", b"sending")]
    assert names(facts) == ["DeliveryAttempted", "MessageDelivered"]
    assert [(o.topic, o.key, o.record) for o in index] == [("mail.delivered", delivered_key("01MID", "bob@far.test"),
                                                            b"1")]
