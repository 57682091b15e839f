"""mailgate.mail.dsn: RFC 3464 bounces that mail readers parse, and no bounce of a bounce."""
from datetime import datetime
from email import message_from_bytes
from email.policy import default

import pytest

from mailgate.mail.dsn import build_dsn, should_send_dsn
from mailgate.mail.headers import header_block
from mailgate.mail.smtp_reply import Reply

ORIGINAL = (b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
            b"Message-ID: <orig-1@example.com>\r\n\r\nbody line\r\n")


def _dsn(**over):
    args = dict(reporting_mta="gw.example.org", original_message_id="01HZX0MSGID",
                original_mail_from="alice@example.com",
                failed=[("bob@example.net", Reply.parse(550, "5.1.1 user unknown")),
                        ("<carol@example.net>", Reply.parse(554, "no thanks"))],
                original_headers=header_block(ORIGINAL), arrival_date=datetime(2024, 5, 1, 12, 0, 0),
                reason="The recipient's server refused the message.")
    args.update(over)
    return build_dsn(**args)


def test_the_dsn_quotes_the_original_header_block():
    assert header_block(ORIGINAL) == ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"


def test_dsn_structure_parses_with_stdlib():
    raw = _dsn()
    msg = message_from_bytes(raw, policy=default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@gw.example.org"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"].endswith("@gw.example.org>") and msg["Date"]
    assert msg["In-Reply-To"] == "<orig-1@example.com>"


def test_delivery_status_fields_per_recipient():
    msg = message_from_bytes(_dsn())
    per_message, *per_rcpt = msg.get_payload()[1].get_payload()
    assert per_message["Reporting-MTA"] == "dns; gw.example.org"
    assert per_message["Arrival-Date"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert [r["Final-Recipient"] for r in per_rcpt] == ["rfc822; bob@example.net", "rfc822; carol@example.net"]
    assert [r["Action"] for r in per_rcpt] == ["failed", "failed"]
    assert [r["Status"] for r in per_rcpt] == ["5.1.1", "5.0.0"]
    assert per_rcpt[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 user unknown"


def test_original_headers_and_human_text():
    msg = message_from_bytes(_dsn(), policy=default)
    human, _, headers = msg.get_payload()
    assert "bob@example.net" in human.get_content() and "refused the message" in human.get_content()
    assert headers.get_payload(decode=True) == header_block(ORIGINAL)


def test_crlf_only():
    raw = _dsn()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.endswith(b"--\r\n")


def test_expired_transient_becomes_permanent_status():
    msg = message_from_bytes(_dsn(failed=[("bob@example.net", Reply.parse(451, "4.4.1 no answer"))], expired=True))
    rcpt = msg.get_payload()[1].get_payload()[1]
    assert rcpt["Status"] == "5.4.7"
    assert rcpt["Diagnostic-Code"] == "smtp; 451 4.4.1 no answer"
    assert "expired" in msg["Subject"]


def test_no_header_injection_and_long_diagnostics_fold():
    long = "5.7.1 " + " ".join(["word"] * 400)
    raw = _dsn(failed=[("bob@example.net\r\nBcc: evil@example.com", Reply.parse(550, long))],
               reason="bad\r\nX-Injected: yes")
    assert b"\r\nBcc:" not in raw and b"\r\nX-Injected:" not in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    rcpt = message_from_bytes(raw).get_payload()[1].get_payload()[1]
    assert rcpt["Status"] == "5.7.1"


def test_non_ascii_is_encoded():
    raw = _dsn(original_headers="Subject: caf\u00e9\r\n".encode(),
               failed=[("b\u00f6b@example.net", Reply.parse(550, "5.1.1 unbekannt \u00fc"))],
               reason="R\u00e9ason")
    assert raw.isascii()
    msg = message_from_bytes(raw, policy=default)
    human, status, headers = msg.get_payload()
    assert "R\u00e9ason" in human.get_content()
    assert headers.get_payload(decode=True) == "Subject: caf\u00e9\r\n".encode()
    assert status.get_payload()[1]["Final-Recipient"] == "utf-8; b\\x{F6}b@example.net"


def test_build_refuses_null_sender_and_empty_failures():
    with pytest.raises(ValueError):
        _dsn(original_mail_from="<>")
    with pytest.raises(ValueError):
        _dsn(failed=[])


def test_from_local_part_is_configurable():
    assert message_from_bytes(_dsn(from_local="postmaster"))["From"] == \
        "Mail Delivery System <postmaster@gw.example.org>"


def test_fresh_message_id_each_time():
    ids = {message_from_bytes(_dsn())["Message-ID"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("sender", ["", "<>", " <> "])
def test_no_dsn_to_null_sender(sender):
    assert should_send_dsn(sender, header_block(ORIGINAL)) is False


def test_no_dsn_for_a_dsn():
    assert should_send_dsn("someone@example.org", header_block(_dsn())) is False
    bounce_without_auto_submitted = (b'Content-Type: multipart/report; report-type="delivery-status";\r\n'
                                     b' boundary="x"\r\n')
    assert should_send_dsn("someone@example.org", bounce_without_auto_submitted) is False


@pytest.mark.parametrize("value,expected", [
    ("auto-replied", False), ("auto-generated", False), ("Auto-Replied; x=y", False), ("no", True), ("No", True)])
def test_auto_submitted(value, expected):
    headers = f"From: a@example.com\r\nAuto-Submitted: {value}\r\n".encode()
    assert should_send_dsn("a@example.com", headers) is expected


def test_ordinary_mail_gets_a_dsn():
    assert should_send_dsn("alice@example.com", header_block(ORIGINAL)) is True
    other_report = b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n"
    assert should_send_dsn("<alice@example.com>", other_report) is True
    assert should_send_dsn("alice@example.com", b"") is True
