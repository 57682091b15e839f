"""DSN (RFC 3461) end to end: what a client asks for at MAIL and RCPT is what its notices do.

One real broker and the three stages (plus the tracker) for the module; four real aiosmtpd primaries, one per
inbound domain: `plain.test` (no DSN offered), `dsn.test` (offers DSN and records the parameters it gets),
`reject.test` (refuses every recipient with 550) and `sender.test`, the senders' own domain, where every notice
mailgate sends arrives. Shown: NOTIFY=SUCCESS to a next hop without DSN gives one "relayed" notice naming the ORCPT
and the ENVID; a next hop that offers DSN gets the same NOTIFY/ORCPT/RET/ENVID and mailgate sends no notice of its
own (RFC 3461 5.2.2: that hop reports); NOTIFY=NEVER to a rejecting primary gives no notice while the same failure
without NOTIFY does, with RET=HDRS returning the header section only; trace and search show the request.
"""
from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from tests.support.harness import ROOT, Gateway, SmtpPrimary, _wait_line
from tests.support.ports import free_port

pytestmark = pytest.mark.scenario

DOMAINS = ("plain", "dsn", "reject", "sender")


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    servers = {name: SmtpPrimary(dsn=name == "dsn").start() for name in DOMAINS}
    servers["reject"].handler.script = lambda rcpts: "550 5.1.1 <%s>: no such user" % rcpts[0]
    g = Gateway(tmp_path_factory.mktemp("dsn"))
    try:
        g.configure({"metrics": {"tracker_port": free_port()}, "inbound_gateways": [{
            "name": name, "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "primary_port": servers[name].port,
            "domain_verification": {"mode": "specified_domains", "domains": [f"{name}.test"]}} for name in DOMAINS]})
        g.start_broker()
        g.start_all()
        tracker = g.start("tracker", wait=False)
        _wait_line(g.workdir / "tracker-0.log", "tracker consuming", tracker)
        yield SimpleNamespace(g=g, **servers)
    finally:
        g.stop_all()
        if g.cfg is not None:
            g.stop_broker()
        for s in servers.values():
            s.stop()


def send(port: int, rcpt: str, subject: str, mail_options=(), rcpt_options=()) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        assert s.has_extn("dsn")
        code, reply = s.mail("alice@sender.test", options=list(mail_options))
        assert code == 250, reply
        code, reply = s.rcpt(rcpt, options=list(rcpt_options))
        assert code == 250, reply
        code, reply = s.data(f"From: <alice@sender.test>\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]


def notices(gw, marker: str) -> list:
    """The notices at the senders' primary about the message whose subject is `marker`."""
    return [m for m in gw.sender.messages if m.mail_from == "<>" and f"Subject: {marker}".encode() in m.data]


def wait_notices(gw, marker: str, timeout_s: float = 90) -> list:
    deadline = time.monotonic() + timeout_s
    while not notices(gw, marker):
        assert time.monotonic() < deadline, f"no notice about {marker!r} within {timeout_s}s"
        time.sleep(0.2)
    return notices(gw, marker)


def cli(g: Gateway, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(g.config_path)],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_notify_success_to_a_next_hop_without_dsn_gives_one_relayed_notice_naming_the_orcpt(gw):
    mid = send(gw.g.smtp_port, "bob@plain.test", "success please", ["RET=HDRS", "ENVID=env+2Bone"],
               ["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob.Typed+2BTag@plain.test"])
    gw.g.wait_events(mid, "MessageDelivered", timeout_s=90)
    assert [m.rcpt_tos for m in gw.plain.wait_for(1)] == [["bob@plain.test"]]
    found = wait_notices(gw, "success please")
    time.sleep(3)  # a second notice would have come by now
    assert len(notices(gw, "success please")) == 1
    dsn = found[0].data
    assert found[0].rcpt_tos == ["alice@sender.test"] and b"Subject: Successful Mail Delivery Report" in dsn
    assert b"Action: relayed" in dsn and b"Status: 2.0.0" in dsn
    assert b"Original-Recipient: rfc822; Bob.Typed+Tag@plain.test" in dsn
    assert b"Final-Recipient: rfc822; bob@plain.test" in dsn and b"Original-Envelope-Id: env+one" in dsn
    trace = cli(gw.g, "trace", mid, "--from-log")
    assert ("dsn_ret=HDRS, dsn_envid=env+one, dsn_recipients=(recipient=bob@plain.test notify=SUCCESS "
            "orcpt=rfc822;Bob.Typed+Tag@plain.test)") in trace, trace
    deadline = time.monotonic() + 30
    while "(DSN RET=HDRS" not in (found := cli(gw.g, "search", "--recipient", "bob@plain.test")):
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def test_a_next_hop_that_offers_dsn_gets_the_same_parameters_and_mailgate_sends_no_notice(gw):
    mid = send(gw.g.smtp_port, "carol@dsn.test", "pass it on", ["RET=FULL", "ENVID=env-two"],
               ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Carol+2BX@dsn.test"])
    gw.g.wait_events(mid, "MessageDelivered", timeout_s=90)
    assert [m.rcpt_tos for m in gw.dsn.wait_for(1)] == [["carol@dsn.test"]]
    assert gw.dsn.handler.mail_params == [["RET=FULL", "ENVID=env-two"]]
    assert gw.dsn.handler.rcpt_params == [("carol@dsn.test", ["NOTIFY=SUCCESS,FAILURE",
                                                              "ORCPT=rfc822;Carol+2BX@dsn.test"])]
    time.sleep(5)  # a relayed notice would be written with MessageDelivered and arrive within seconds
    assert notices(gw, "pass it on") == []


def test_notify_never_to_a_rejecting_primary_gives_no_notice_and_the_default_gives_one_with_headers_only(gw):
    never = send(gw.g.smtp_port, "ghost@reject.test", "never tell", [], ["NOTIFY=NEVER"])
    default = send(gw.g.smtp_port, "ghost@reject.test", "tell me", ["RET=HDRS", "ENVID=env-three"],
                   ["ORCPT=rfc822;Ghost@reject.test"])
    gw.g.wait_events(never, "MessageBounced", timeout_s=90)
    gw.g.wait_events(default, "MessageBounced", timeout_s=90)
    bounced = {e.message_id: e for e in gw.g.events() if type(e).__name__ == "MessageBounced"}
    assert bounced[never].dsn_message_id is None and bounced[default].dsn_message_id
    dsn = wait_notices(gw, "tell me")[0].data
    assert b"Action: failed" in dsn and b"Status: 5.1.1" in dsn and b"Original-Envelope-Id: env-three" in dsn
    assert b"Original-Recipient: rfc822; Ghost@reject.test" in dsn
    assert b"text/rfc822-headers" in dsn and b"body of tell me" not in dsn  # RET=HDRS: the header section only
    gw.g.wait_events(bounced[default].dsn_message_id, "MessageDelivered", timeout_s=60)
    time.sleep(3)
    assert notices(gw, "never tell") == []
