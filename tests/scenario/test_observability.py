"""Each stage serves /metrics, /healthz and /readyz on its own port; one message moves the counters of all three."""
from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.scenario.test_walking_skeleton import inbound_config, queued_id, send
from tests.support.harness import free_port

pytestmark = pytest.mark.scenario

STAGES = ("ingress", "processor", "egress")


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value, from a real HTTP GET of /metrics."""
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_ready(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/readyz on {port} not 200 within {timeout_s}s")


def wait_metric(port: int, name: str, timeout_s: float = 30, **labels: str) -> dict:
    """The scrape in which a sample `name` with `labels` first appears with a value above 0."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if total(samples, name, **labels) > 0 or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def has(samples: dict, name: str, **labels: str) -> bool:
    return any(n == name and set(labels.items()) <= ls for n, ls in samples)


def test_each_stage_serves_metrics_and_readiness_and_one_message_moves_the_counters(gateway, primary):
    ports = {stage: free_port() for stage in STAGES}
    gateway.configure({**inbound_config(primary.port),
                       "metrics": {f"{stage}_port": port for stage, port in ports.items()}})
    gateway.start_broker()
    gateway.start_all()
    for stage, port in ports.items():
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200, stage
        wait_ready(port)

    code, reply = send(gateway.smtp_port, "bob@example.test")
    assert code == 250, reply
    mid = queued_id(reply)
    primary.wait_for(1)
    gateway.wait_events(mid, "MessageDelivered")

    ingress = scrape(ports["ingress"])
    assert total(ingress, "mailgate_ingress_messages_accepted_total", direction="inbound") == 1
    assert total(ingress, "mailgate_ingress_publish_seconds_count") == 1
    assert total(ingress, "mailgate_ingress_sessions_total") >= 1
    assert total(ingress, "mailgate_ingress_queue_unavailable_total") == 0

    processor = wait_metric(ports["processor"], "mailgate_processor_messages_total", outcome="routed")
    assert total(processor, "mailgate_processor_messages_total", outcome="routed") == 1
    assert total(processor, "mailgate_processor_messages_total") == 1

    egress = wait_metric(ports["egress"], "mailgate_egress_attempts_total", result="delivered")
    assert total(egress, "mailgate_egress_attempts_total", gateway="primary", result="delivered") == 1
    assert total(egress, "mailgate_egress_recipients_total", outcome="delivered") == 1
    assert total(egress, "mailgate_egress_delivery_latency_seconds_count") == 1
    assert total(egress, "mailgate_egress_duplicates_suppressed_total") == 0
    assert has(egress, "process_cpu_seconds_total")
    deadline = time.monotonic() + 15  # the lag is sampled every few seconds; everything was consumed
    while not has(egress, "mailgate_egress_consumer_lag", topic="mail.outbound") and time.monotonic() < deadline:
        time.sleep(0.5)
        egress = scrape(ports["egress"])
    assert total(egress, "mailgate_egress_consumer_lag", topic="mail.outbound") == 0
    assert has(egress, "mailgate_egress_consumer_lag", topic="mail.outbound", partition="0")
    # Each stage's registry holds only its own metrics.
    assert not any(n.startswith(("mailgate_egress", "mailgate_processor")) for n, _ in ingress)
