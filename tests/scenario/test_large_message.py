"""A message larger than egress's fetch sizes (1 MiB per partition, 8 MiB per fetch: soft limits since KIP-74) still
goes through whole: egress fetches a record bigger than its limits on its own rather than stalling on it."""
from __future__ import annotations

import pytest

from tests.scenario.test_walking_skeleton import inbound_config, queued_id, send

pytestmark = pytest.mark.scenario


def test_a_12_mb_message_reaches_the_primary_intact(gateway, primary):
    gateway.configure(inbound_config(primary.port))
    gateway.start_broker()
    gateway.start_all()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + b"\r\n"
    body = (b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: large\r\n\r\n"
            + b"".join(b"%08d " % n + line for n in range(12 * 1024 * 1024 // (len(line) + 9))))
    assert len(body) > 12 * 1024 * 1024 - 100
    code, reply = send(gateway.smtp_port, "bob@example.test", body)
    assert code == 250, reply
    mid = queued_id(reply)
    gateway.wait_events(mid, "MessageDelivered", timeout_s=120)
    got = primary.wait_for(1)[0]
    assert got.data.endswith(body) and len(got.data) - len(body) < 1024  # only our Received header in front
