"""`body_crlf_only`: a body's writer says it checked its line endings, and egress then skips the check. The flag
must be true only when it holds: the processor passes ingress's answer on for a body it did not change, and says
"unknown" for one it did."""
from __future__ import annotations

import dataclasses

from egress.smtp_session import data_payload
from mailgate.core.config import parse_config
from processors.routing import RoutingPolicy
from schemas import MessageReceived

BODY = b"Received: x\r\nSubject: hi\r\n\r\n.dot\r\nend\r\n"
CFG = parse_config({"outbound_gateways": [{"name": "relay", "address": "10.0.0.1"}]})


def received(checked: bool) -> MessageReceived:
    return MessageReceived(message_id="M1", occurred_at=1, node="t", direction="outbound", inbound_gateway=None,
                           client_address="10.0.0.9", client_helo="c", client_auth=None, tls=None,
                           mail_from="a@sender.test", rcpt_to=["b@far.test"], size_bytes=len(BODY), body_sha256="",
                           body=BODY, body_crlf_only=checked)


def routed_flag(rec: MessageReceived, body: bytes | None = None) -> bool:
    out = RoutingPolicy(CFG, "t")(rec, recipients=list(rec.rcpt_to), body=body)[0]  # [mail.outbound, its audit copy]
    return out.record.body_crlf_only


def test_the_processor_passes_the_check_on_only_for_a_body_it_did_not_change():
    assert routed_flag(received(True)) is True
    assert routed_flag(received(True), body=BODY) is True  # the very bytes it got
    assert routed_flag(received(True), body=b"X-Spam: yes\r\n" + BODY) is False
    assert routed_flag(received(False)) is False  # unknown stays unknown (records of earlier releases)


def test_records_of_earlier_releases_read_as_unchecked():
    old = {f.name: getattr(received(True), f.name) for f in dataclasses.fields(MessageReceived)
           if f.name != "body_crlf_only"}
    assert MessageReceived(**old).body_crlf_only is False


def test_egress_normalises_an_unchecked_body_and_dot_stuffs_either_way():
    bare = b"Subject: hi\n\n.dot\rend\r\n"
    assert b"".join(data_payload(bare)) == b"Subject: hi\r\n\r\n..dot\r\nend\r\n.\r\n"
    assert b"".join(data_payload(BODY, crlf_only=True)) == BODY.replace(b"\r\n.", b"\r\n..") + b".\r\n"
