"""The scan step's policy, with a stand-in clamd client (the real one is tests/integration/test_clamd_client.py):
which mail is scanned, what each action emits, the tempfail wait with back-off and the accept verdict."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailgate.core import topics
from mailgate.core.config import parse_config
from mailgate.mail.antivirus.clamd import ClamdReply, ClamdVerdict, ScannerUnavailable
from processors.virus.policy import VirusPolicy
from schemas import MessageReceived, decode

BODY = b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


class Client:
    """Answers with `replies` in turn; an exception in the list is raised instead."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.calls = 0

    async def scan(self, data: bytes) -> ClamdVerdict:
        self.calls += 1
        r = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(r, Exception):
            raise r
        return ClamdVerdict(r, "127.0.0.1:3310", 0.01)


INFECTED = ClamdReply("infected", ("Eicar-Test-Signature.UNOFFICIAL",))
CLEAN = ClamdReply("clean")


def config(virus: dict | None = None, **antivirus):
    gw = {"name": "in", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": 2525}
    if virus:
        gw["virus"] = virus
    return parse_config({"node_name": "t", "antivirus": {"enabled": True, **antivirus}, "inbound_gateways": [gw]})


def received(direction: str = "inbound", login: str | None = None, sender: str = "a@sender.test"):
    return MessageReceived(message_id="M1", occurred_at=1_000, node="t", direction=direction,
                           inbound_gateway="in" if direction == "inbound" else None, client_address="192.0.2.1",
                           client_helo="c", client_auth=login, tls=None, mail_from=sender,
                           rcpt_to=["b@example.test"], size_bytes=len(BODY), body_sha256="", body=BODY)


def run(cfg, client, msg=None, delays: list | None = None):
    async def sleep(s: float) -> None:
        (delays if delays is not None else []).append(s)
    return asyncio.run(VirusPolicy(cfg, "t", client=client, sleep=sleep)(msg or received(), ["b@example.test"]))


def names(decision) -> list[tuple[str, str]]:
    return [(o.topic, type(o.record).__name__) for o in decision.outputs]


def test_infected_inbound_mail_is_quarantined_by_default_with_the_signature_recorded():
    d = run(config(), Client(INFECTED))
    assert d.disposition == "quarantine"
    assert names(d) == [(topics.EVENTS, "MessageScanned"), (topics.QUARANTINE, "MessageQuarantined"),
                        (topics.EVENTS, "MessageQuarantined")]
    scanned, held = d.outputs[0].record, d.outputs[1].record
    assert (scanned.result, scanned.signatures, scanned.action) == ("infected", list(INFECTED.signatures),
                                                                     "quarantine")
    assert held.level == "virus" and decode(held.routed).body == BODY


def test_clean_mail_passes_unchanged_with_its_verdict():
    d = run(config(), Client(CLEAN))
    assert d.disposition == "deliver" and d.body is BODY and names(d) == [(topics.EVENTS, "MessageScanned")]


@pytest.mark.parametrize("action, disposition, emitted", [
    ("discard", "discard", ["MessageScanned", "MessageDiscarded"]),
    ("bounce", "bounce", ["MessageScanned", "MessageBounced", "MessageReceived", "MessageReceived"]),
    ("deliver_and_tag", "deliver", ["MessageScanned"]),
])
def test_each_infected_action(action, disposition, emitted):
    d = run(config({"infected": action}), Client(INFECTED))
    assert d.disposition == disposition and [n for _, n in names(d)] == emitted
    if action == "bounce":
        bounced, dsn = d.outputs[1].record, d.outputs[2]
        assert bounced.reason.startswith("554 5.7.1 Message content rejected: infected (Eicar")
        assert dsn.topic == topics.RECEIVED and dsn.record.rcpt_to == ["a@sender.test"]
        assert bounced.dsn_message_id == dsn.record.message_id
    if action == "deliver_and_tag":
        assert d.body == b"X-Virus-Status: Infected (Eicar-Test-Signature.UNOFFICIAL)\r\n" + BODY


def test_a_bounce_to_the_null_sender_sends_no_dsn():
    d = run(config({"infected": "bounce"}), Client(INFECTED), received(sender=""))
    assert [n for _, n in names(d)] == ["MessageScanned", "MessageBounced"] and d.outputs[1].record.dsn_message_id is None


def test_tempfail_waits_with_back_off_until_a_scanner_answers_never_passing_it_unscanned():
    delays: list[float] = []
    client = Client(ScannerUnavailable("a: down"), ScannerUnavailable("a: down"), ScannerUnavailable("a: down"),
                    INFECTED)
    d = run(config(retry_first_s=1, retry_max_s=3), client, delays=delays)
    assert delays == [1, 2, 3] and client.calls == 4
    assert d.disposition == "quarantine" and d.outputs[0].record.attempts == 4


def test_accept_delivers_with_the_error_verdict_and_a_tag_saying_it_was_not_scanned():
    d = run(config(when_unavailable="accept"), Client(ScannerUnavailable("127.0.0.1:3310: cannot connect")))
    scanned = d.outputs[0].record
    assert (d.disposition, scanned.result, scanned.action) == ("deliver", "error", "deliver_and_tag")
    assert d.body.startswith(b"X-Virus-Status: Unscanned (no scanner answered: 127.0.0.1:3310: cannot connect)")


@pytest.mark.parametrize("scan_outbound, login, scanned", [
    ("authenticated", "user1", True), ("authenticated", None, False), ("all", None, True), ("none", "user1", False)])
def test_which_outbound_mail_is_scanned(scan_outbound, login, scanned):
    client = Client(INFECTED)
    d = run(config(scan_outbound=scan_outbound, outbound={"infected": "discard"}), client,
            received("outbound", login=login))
    assert client.calls == (1 if scanned else 0)
    assert d.disposition == ("discard" if scanned else "deliver")


def test_nothing_is_scanned_while_antivirus_is_off():
    cfg = config()
    cfg = cfg.model_copy(update={"antivirus": cfg.antivirus.model_copy(update={"enabled": False})})
    client = Client(INFECTED)
    assert run(cfg, client).disposition == "deliver" and client.calls == 0


def test_over_the_size_limit_is_unscannable_and_gets_that_action():
    d = run(config({"unscannable": "discard"}), Client(ClamdReply("unscannable", reason="too big")))
    assert d.disposition == "discard" and d.outputs[0].record.reason == "too big"
    assert d.outputs[1].record.reason == "virus_unscannable"


def test_a_clean_verdict_made_at_data_is_reused_without_asking_clamd_again():
    client = Client(INFECTED)  # would say infected, were it asked
    msg = dataclasses.replace(received(), data_scan_result="clean", data_scan_scanner="127.0.0.1:3310",
                              data_scan_duration_ms=12)
    d = run(config({"scan_at_data": True}), client, msg)
    s = d.outputs[0].record
    assert client.calls == 0 and d.disposition == "deliver"
    assert (s.result, s.scanned_at, s.scanner, s.duration_ms, s.action) == (
        "clean", "ingress", "127.0.0.1:3310", 12, "deliver")


def test_another_verdict_made_at_data_is_scanned_again_and_mail_not_scanned_there_says_processor():
    client = Client(INFECTED)
    d = run(config(), client, dataclasses.replace(received(), data_scan_result="unscannable"))
    assert client.calls == 1 and d.outputs[0].record.scanned_at == "processor"
    assert d.disposition == "quarantine"
    assert run(config(), Client(CLEAN)).outputs[0].record.scanned_at == "processor"
