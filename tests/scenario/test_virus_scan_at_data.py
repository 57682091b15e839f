"""scan_at_data through the real broker and a real clamd: an infected message is refused at DATA with 554 5.7.1
naming the signature and nothing reaches Kafka; with clamd stopped (tempfail) the client gets 451 4.3.0 and nothing
is stored, and the same message is accepted and delivered once clamd is back; a gateway without scan_at_data
accepts the same message and holds it in quarantine."""
from __future__ import annotations

import asyncio
import smtplib

import pytest

from mailgate.core import topics
from mailgate.core.topic_reader import read_topic
from tests.scenario.test_spam_actions import strip_added
from tests.scenario.test_virus_scan import av_config
from tests.scenario.test_walking_skeleton import queued_id
from tests.support.attachments import message, zipped
from tests.support.clamd import CLAMD, EICAR, EICAR_SIGNATURE, MARKER, MARKER_SIGNATURE, PEER_MISSING, running_clamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(CLAMD is None, reason=PEER_MISSING)]

CLEAN = message(("notes.txt", b"nothing to see\r\n"), subject="clean", message_id="<clean-2@sender.test>")


def send(port: int, rcpt: str, body: bytes) -> tuple[int, str]:
    """DATA's reply (code, text); smtplib raises for a refusal at DATA, which is what these tests look at."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        assert s.rcpt(rcpt)[0] == 250
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(body + b".\r\n")
        code, text = s.getreply()
        return code, text.decode()


def records(gateway, topic: str) -> list:
    async def read() -> list:
        return [e async for _, e in read_topic(gateway.cfg, topic, client_id="test-reader")]
    return asyncio.run(read())


def with_scan_at_data(primary_port: int, scanners: list[dict]) -> dict:
    cfg = av_config(primary_port, scanners, virus={"scan_at_data": True})
    cfg["inbound_gateways"].append({"name": "later", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                    "primary_port": primary_port,
                                    "domain_verification": {"mode": "specified_domains", "domains": ["later.test"]}})
    return cfg


def test_infected_mail_is_refused_at_data_naming_the_signature_and_nothing_reaches_kafka(gateway, primary, tmp_path):
    with running_clamd(tmp_path / "clamd") as clamd:
        gateway.configure(with_scan_at_data(primary.port, [clamd.scanner]))
        gateway.start_broker()
        gateway.start_all()

        code, text = send(gateway.smtp_port, "bob@example.test", message(("invoice.zip", zipped(("e.com", EICAR)))))
        assert (code, text) == (554, f"5.7.1 Message content rejected: infected ({EICAR_SIGNATURE})")
        code, text = send(gateway.smtp_port, "bob@example.test", message(("m.txt", MARKER)))
        assert (code, text) == (554, f"5.7.1 Message content rejected: infected ({MARKER_SIGNATURE})")
        clean = queued_id(send(gateway.smtp_port, "bob@example.test", CLEAN)[1])
        # the other gateway does not scan at DATA: accepted, then held by the processor's scan
        held = queued_id(send(gateway.smtp_port, "carol@later.test", message(("e.com", EICAR)))[1])

        assert strip_added(primary.wait_for(1, timeout_s=120)[0].data, 0) == CLEAN
        gateway.wait_events(held, "MessageQuarantined", timeout_s=90)
        assert sorted(r.message_id for r in records(gateway, topics.RECEIVED)) == sorted([clean, held])
        assert {e.message_id for e in records(gateway, topics.EVENTS)} == {clean, held}
        assert "reason=virus signatures=" + EICAR_SIGNATURE in gateway.logs()
        assert len(primary.messages) == 1


def test_with_clamd_stopped_the_client_gets_451_and_is_accepted_once_clamd_is_back(gateway, primary, tmp_path):
    with running_clamd(tmp_path / "clamd") as clamd:
        gateway.configure(with_scan_at_data(primary.port, [clamd.scanner]))
        gateway.start_broker()
        gateway.start_all()
        clamd.stop()

        code, text = send(gateway.smtp_port, "bob@example.test", CLEAN)
        assert (code, text) == (451, "4.3.0 Error: virus scanner unavailable, try again later")
        assert records(gateway, topics.RECEIVED) == []

        clamd.start()
        code, text = send(gateway.smtp_port, "bob@example.test", CLEAN)
        assert code == 250, text
        mid = queued_id(text)
        assert strip_added(primary.wait_for(1, timeout_s=120)[0].data, 0) == CLEAN
        gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
        assert [r.message_id for r in records(gateway, topics.RECEIVED)] == [mid]
