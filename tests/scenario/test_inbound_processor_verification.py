"""The processor re-verifies inbound recipients authoritatively: a recipient a Backup MX accepted while the
directory was down, and that the directory then says does not exist, is dropped with RecipientRejected(processor)
and a DSN to the sender; with the directory still unreachable the processor fails open and keeps the recipient."""
from __future__ import annotations

import smtplib

import pytest

from tests.support.smartermail_api import SmarterMailAPI

pytestmark = pytest.mark.scenario

from tests.support.secrets import SMARTERMAIL_PASSWORD as PASSWORD
MESSAGE = (b"From: alice@example.test\r\nTo: ghost@backup.test\r\nSubject: hello\r\n"
           b"Message-ID: <pv-1@example.test>\r\n\r\nHello.\r\n")


def backup_mx(name: str, domain: str, api_url: str, primary_port: int) -> dict:
    return {"name": name, "mode": "backup_mx", "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
            "smtp_user_verification": True, "domain_verification": {"domains": [domain]},
            "smartermail": {"enabled": True, "url": api_url, "username": "admin", "password": PASSWORD,
                            "user_verification": "web_service"}}


def send(port: int, rcpts: list[str], sender: str = "alice@example.test") -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        s.mail(sender)
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, msg
        code, msg = s.data(MESSAGE)
        assert code == 250, msg
        return msg.decode().rsplit(" ", 1)[1]


def test_processor_drops_unknown_recipient_with_dsn_and_fails_open_when_directory_unreachable(gateway, primary):
    with SmarterMailAPI(users={"bob@backup.test"}, domains=["backup.test"], password=PASSWORD) as api1, \
            SmarterMailAPI(users=set(), domains=["backup2.test"], password=PASSWORD) as api2:
        gateway.configure({"inbound_gateways": [
            {"name": "home", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
             "primary_port": primary.port, "domain_verification": {"domains": ["example.test"]}},
            backup_mx("bmx1", "backup.test", api1.url, primary.port),
            backup_mx("bmx2", "backup2.test", api2.url, primary.port)]})
        gateway.start_broker()
        gateway.start("egress")
        gateway.start("ingress")
        api1.down = api2.down = True  # the Backup MX accepts what it cannot verify
        mixed = send(gateway.smtp_port, ["ghost@backup.test", "bob@backup.test"])
        unverifiable = send(gateway.smtp_port, ["ghost@backup2.test"])
        api1.down = False  # the processor finds backup.test's directory up again; backup2.test's stays down
        gateway.start("processor")

        gateway.wait_events(mixed, "MessageDelivered", timeout_s=120)
        gateway.wait_events(unverifiable, "MessageDelivered", timeout_s=120)
        got = primary.wait_for(3, timeout_s=120)  # bob's copy, the unverifiable one, and the DSN to alice

        events = gateway.events(mixed)
        rejected = [e for e in events if type(e).__name__ == "RecipientRejected"]
        assert [(e.recipient, e.stage, e.reply_code, e.enhanced_code) for e in rejected] == [
            ("ghost@backup.test", "processor", 550, "5.1.1")]
        delivered = [e for e in events if type(e).__name__ == "MessageDelivered"]
        assert [e.recipients for e in delivered] == [["bob@backup.test"]]

        by_rcpt = {tuple(m.rcpt_tos): m for m in got}
        assert set(by_rcpt) == {("bob@backup.test",), ("ghost@backup2.test",), ("alice@example.test",)}
        dsn = by_rcpt[("alice@example.test",)]
        assert dsn.mail_from in ("", "<>")
        assert b"multipart/report" in dsn.data and b"report-type=delivery-status" in dsn.data
        assert b"Final-Recipient: rfc822; ghost@backup.test" in dsn.data and b"Status: 5.1.1" in dsn.data
        assert mixed.encode() in dsn.data

        verified = [e for e in gateway.events(unverifiable) if type(e).__name__ == "RecipientVerified"]
        assert [(e.recipient, e.stage, e.method, e.stale) for e in verified] == [
            ("ghost@backup2.test", "processor", "fail_open", True)]
        assert PASSWORD not in gateway.logs()
        assert not [e for e in gateway.events() if PASSWORD in repr(e)]
