"""mailgate.core.metrics (with egress's counting in mailgate.mail.delivery_metrics and the tracker's metrics in
mailgate.ops.tracking.metrics): counting from appended records, result classes, directory-cache collector, consumer
lag, the HTTP endpoint, and the JSON log fields."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket

import httpx
import pytest
from aiokafka import TopicPartition

from mailgate.core import metrics, topics
from mailgate.core.config import MetricsConfig
from mailgate.core.logs import JsonFormatter
from mailgate.mail import delivery_metrics
from mailgate.ops.tracking import metrics as tracker_metrics
from mailgate.mail.outputs import Output, audit
from schemas import (DeliveryAttempted, DuplicateSuppressed, MessageDelivered, MessageDiscarded, RecipientRejected,
                     RecipientResult, RecipientVerified, SmtpReply)


def value(stage: str, name: str, **labels: str) -> float:
    registry = tracker_metrics.REGISTRY if stage == "tracker" else metrics.REGISTRIES[stage]
    return registry.get_sample_value(name, labels) or 0.0


def attempted(*codes: int, error: str | None = None, gateway: str = "gw1") -> DeliveryAttempted:
    return DeliveryAttempted(
        message_id="01M", occurred_at=1, node="n", attempt=1, gateway=gateway, host="127.0.0.1", port=25,
        tls_version=None, tls_cipher=None, recipients=[f"r{i}@x.test" for i in range(len(codes))],
        results=[RecipientResult(recipient=f"r{i}@x.test", reply=SmtpReply(code=c, enhanced_code="", text=""))
                 for i, c in enumerate(codes)],
        error=error, duration_ms=1, outcome_unknown_recipients=[])


@pytest.mark.parametrize("codes, result", [((250, 250), "delivered"), ((250, 550), "bounced"),
                                           ((550, 451), "deferred"), ((), "error")])
def test_attempt_result_is_the_worst_reply_or_error(codes, result):
    assert delivery_metrics.attempt_result(attempted(*codes, error=None if codes else "connect refused")) == result


def test_observe_egress_counts_attempts_outcomes_latency_and_duplicates_once():
    delivered = MessageDelivered(message_id="01M", occurred_at=5_000, node="n", recipients=["a@x.test", "b@x.test"],
                                 gateway="unit-gw", host="h", reply_text="250 ok", attempt=1, received_at=3_500,
                                 forced=False)
    outputs = [audit(attempted(250, 250, gateway="unit-gw")), audit(delivered),
               Output(topics.DELIVERED, "01M|a@x.test", b"1"),
               audit(DuplicateSuppressed(message_id="01M", occurred_at=1, node="n", recipients=["c@x.test"],
                                         reason="already delivered"))]
    samples = [("mailgate_egress_attempts_total", {"gateway": "unit-gw", "result": "delivered"}),
               ("mailgate_egress_recipients_total", {"outcome": "delivered"}),
               ("mailgate_egress_duplicates_suppressed_total", {}),
               ("mailgate_egress_delivery_latency_seconds_count", {}),
               ("mailgate_egress_delivery_latency_seconds_bucket", {"le": "2.5"}),  # it took 1.5 s
               ("mailgate_egress_delivery_latency_seconds_bucket", {"le": "1.0"})]
    before = [value("egress", name, **labels) for name, labels in samples]
    delivery_metrics.observe_egress(outputs)
    after = [value("egress", name, **labels) for name, labels in samples]
    assert [a - b for a, b in zip(after, before)] == [1, 2, 1, 1, 1, 0]


def test_observe_pipeline_counts_outcomes_from_audit_copies_only():
    discarded = MessageDiscarded(message_id="01M", occurred_at=1, node="n", reason="spam_delete", headers="")
    verified = RecipientVerified(message_id="01M", occurred_at=1, node="n", recipient="a@x.test", stage="processor",
                                 method="fail_open", cached=False, stale=True)
    rejected = RecipientRejected(message_id="01M", occurred_at=1, node="n", recipient="b@x.test", stage="processor",
                                 reason="user_unknown", reply_code=550, enhanced_code="5.1.1",
                                 client_address="127.0.0.1", mail_from="")
    samples = [("mailgate_processor_messages_total", {"outcome": "discarded"}),
               ("mailgate_processor_recipient_verifications_total", {"decision": "fail_open"}),
               ("mailgate_processor_recipient_verifications_total", {"decision": "rejected"})]
    before = [value("processor", name, **labels) for name, labels in samples]
    metrics.observe_pipeline([audit(verified), audit(rejected), Output(topics.QUARANTINE, "01M", discarded),
                              audit(discarded)])
    after = [value("processor", name, **labels) for name, labels in samples]
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1]


def test_reason_label_drops_details_so_labels_stay_bounded():
    assert metrics.reason_label("bad_address:no @ in <x>") == "bad_address"
    assert metrics.reason_label("relay_denied") == "relay_denied"


def test_directory_cache_counters_are_read_at_scrape_time():
    class Cache:
        hits, misses, stale_answers, calls = 3, 2, 1, 2

    cache = Cache()
    metrics.DIRECTORY_CACHES["processor"].watch(lambda: {"gw": cache})
    try:
        assert value("processor", "mailgate_directory_cache_lookups_total", gateway="gw", result="hit") == 3
        cache.hits = 7
        assert value("processor", "mailgate_directory_cache_lookups_total", gateway="gw", result="hit") == 7
        assert value("processor", "mailgate_directory_requests_total", gateway="gw") == 2
        assert value("ingress", "mailgate_directory_cache_lookups_total", gateway="gw", result="hit") == 0
    finally:
        metrics.DIRECTORY_CACHES["processor"].watch(dict)


class FakeConsumer:
    def __init__(self, positions: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> None:
        self.positions, self.ends = positions, ends

    def assignment(self):
        return set(self.positions)

    async def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp):
        if self.positions[tp] is None:
            raise RuntimeError("not assigned any more")
        return self.positions[tp]


async def test_consumer_lag_is_end_minus_position_and_skips_partitions_without_one():
    a, b, c = TopicPartition("mail.outbound", 0), TopicPartition("mail.retry.60s", 1), TopicPartition("x", 0)
    lag = await metrics.consumer_lag(FakeConsumer({a: 5, b: 3, c: None}, {a: 9, b: 3, c: 1}))
    assert lag == {("mail.outbound", "0"): 4, ("mail.retry.60s", "1"): 0}
    assert await metrics.consumer_lag(FakeConsumer({}, {})) == {}


@contextlib.asynccontextmanager
async def sampling(consumer, **kw):
    """metrics.sample_lag running on `consumer` every 10 ms, cancelled after."""
    task = asyncio.create_task(metrics.sample_lag(consumer, every_s=0.01, **kw))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sample_lag_sets_the_gauge_and_drops_revoked_partitions():
    a, b = TopicPartition("mail.outbound", 7), TopicPartition("mail.outbound", 8)
    consumer = FakeConsumer({a: 1, b: 2}, {a: 4, b: 2})
    try:
        async with sampling(consumer):
            await asyncio.sleep(0.05)
            assert value("egress", "mailgate_egress_consumer_lag", topic="mail.outbound", partition="7") == 3
            del consumer.positions[b]
            await asyncio.sleep(0.05)
            assert metrics.REGISTRIES["egress"].get_sample_value(
                "mailgate_egress_consumer_lag", {"topic": "mail.outbound", "partition": "8"}) is None
    finally:
        metrics.EGRESS_LAG.remove("mail.outbound", "7")


async def test_the_tracker_samples_its_lag_into_its_own_gauge_with_the_same_sampler():
    tp = TopicPartition("mail.events", 3)
    try:
        async with sampling(FakeConsumer({tp: 10}, {tp: 25}), gauge=tracker_metrics.TRACKER_LAG):
            deadline = asyncio.get_running_loop().time() + 5
            while value("tracker", "mailgate_tracker_consumer_lag", topic="mail.events", partition="3") != 15:
                assert asyncio.get_running_loop().time() < deadline, "the tracker's lag was never sampled"
                await asyncio.sleep(0.01)
        assert metrics.REGISTRIES["egress"].get_sample_value(
            "mailgate_egress_consumer_lag", {"topic": "mail.events", "partition": "3"}) is None
    finally:
        tracker_metrics.TRACKER_LAG.remove("mail.events", "3")


async def test_endpoint_serves_metrics_health_and_readiness_over_http():
    ready = False
    server = metrics.MetricsServer("ingress", MetricsConfig(ingress_port=0), ready=lambda: ready)
    port = await server.start()
    try:
        metrics.INGRESS_SESSIONS.inc()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            ready = True
            assert (await client.get("/readyz")).status_code == 200
            body = (await client.get("/metrics")).text
        assert "mailgate_ingress_sessions_total" in body and "mailgate_egress" not in body
    finally:
        await server.close()


async def test_endpoint_on_a_taken_port_is_logged_and_mail_flows_on(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = metrics.MetricsServer("egress", MetricsConfig(egress_port=port), ready=lambda: True)
        assert await server.start() is None
        await server.close()
    assert "cannot bind" in caplog.text
    assert await metrics.MetricsServer("egress", MetricsConfig(enabled=False), ready=lambda: True).start() is None


def test_json_log_lines_carry_the_message_id_as_a_field():
    record = logging.LogRecord("mailgate.egress", logging.INFO, __file__, 1, "attempt id=%s", ("01M",), None)
    record.message_id = "01M"
    line = json.loads(JsonFormatter().format(record))
    assert line["message_id"] == "01M" and line["msg"] == "attempt id=01M" and line["level"] == "INFO"
