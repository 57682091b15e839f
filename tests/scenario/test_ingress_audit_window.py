"""Regression for issue 14: the copy to mail.received is acknowledged, the audit copy to mail.events is not.

Before: the client got 451, no TempfailedMessageStored was written, and the message was delivered anyway with no
MessageReceived in the audit log. Real broker, real ingress: mail.events is made to refuse ingress's audit copy
(its max.message.bytes lowered below the record's size) while mail.received takes the message.
"""
from __future__ import annotations

import asyncio
import re
import smtplib

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from mailgate.core import kafka, topics
from tests.scenario.test_faults import inbound  # the same gateway and publish timeout as the fault tests

pytestmark = pytest.mark.scenario


def set_events_max_bytes(cfg, max_bytes: str | None) -> None:
    """Set mail.events' topic configs to the declared ones, with max.message.bytes overridden if given."""
    declared = next(t for t in topics.declared_topics(cfg) if t.name == topics.EVENTS).config
    configs = {**declared, **({"max.message.bytes": max_bytes} if max_bytes else {})}

    async def alter() -> None:
        admin = AIOKafkaAdminClient(**kafka._common(cfg, "test-admin"))
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topics.EVENTS, configs)])
        finally:
            await admin.close()
    asyncio.run(alter())


def test_message_stored_but_not_audited_gets_its_audit_record_and_tempfailed(gateway, primary):
    gateway.configure(inbound(primary.port))
    gateway.start_broker()
    set_events_max_bytes(gateway.cfg, "100")  # every audit copy is larger than this: the broker refuses it
    gateway.start("ingress")

    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        s.rcpt("bob@example.test")
        code, reply = s.data(b"Subject: window\r\n\r\nstored, not audited\r\n")
    assert (code, reply[:5]) == (451, b"4.3.0")
    found = re.search(r"id=(\S+) is stored in mail.received but its audit copy was not", gateway.logs())
    assert found, gateway.logs()[-2000:]
    mid = found.group(1)

    set_events_max_bytes(gateway.cfg, None)  # Kafka takes audit records again
    types = gateway.wait_events(mid, "TempfailedMessageStored", timeout_s=60)
    assert types[:2] == ["MessageReceived", "TempfailedMessageStored"]

    gateway.start("processor")
    gateway.start("egress")
    types = gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    assert len(primary.wait_for(1)) == 1
    assert types.count("MessageReceived") == 1 and types.count("MessageDelivered") == 1
