"""Attachment rules end to end through the real broker and a real clamd: the built-in dangerous-files rule holds
a.pdf.exe (double extension), an MZ executable named notes.txt (type from its bytes) and a .exe inside a 7z; with
`strip` the part is replaced by a note, every other byte is delivered as sent, and the verdict says a DKIM signature
over the body no longer verifies; with `reject` and scan_at_data the client gets 554 5.7.1 and nothing is stored."""
from __future__ import annotations

import pytest

from mailgate.core import topics
from tests.scenario.test_spam_actions import strip_added
from tests.scenario.test_virus_scan import av_config, scanned
from tests.scenario.test_virus_scan_at_data import records, send
from tests.scenario.test_walking_skeleton import queued_id
from tests.support.attachments import MZ_EXECUTABLE, message, seven_zip
from tests.support.clamd import CLAMD, PEER_MISSING, running_clamd

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(CLAMD is None, reason=PEER_MISSING)]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    with running_clamd(tmp_path_factory.mktemp("clamd")) as server:
        yield server


def gateways(primary_port: int, clamd, **extra: dict) -> dict:
    cfg = av_config(primary_port, [clamd.scanner])
    for name, virus in extra.items():
        cfg["inbound_gateways"].append({
            "name": name, "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
            "domain_verification": {"mode": "specified_domains", "domains": [f"{name}.test"]}, "virus": virus})
    return cfg


def test_the_dangerous_files_rule_holds_double_extensions_disguised_executables_and_exes_in_7z(gateway, primary,
                                                                                                clamd):
    gateway.configure(gateways(primary.port, clamd, strip={"attachments": {"dangerous_action": "strip"}}))
    gateway.start_broker()
    gateway.start_all()

    sent = {why: queued_id(send(gateway.smtp_port, "bob@example.test", message(file, subject=why))[1])
            for why, file in (("double extension .pdf.exe", ("invoice.pdf.exe", b"not really a pdf")),
                              ("type exe named .txt", ("notes.txt", MZ_EXECUTABLE)),
                              ("extension .exe", ("tools.7z", seven_zip(("bin/setup.exe", b"installer")))))}
    for why, mid in sent.items():
        assert gateway.wait_events(mid, "MessageQuarantined", timeout_s=90)[-2:] == [
            "MessageScanned", "MessageQuarantined"]
        s = scanned(gateway, mid)
        assert (s.result, s.signatures, s.action) == ("infected", [], "quarantine")
        assert [(f.rule, f.why, f.action) for f in s.findings] == [("dangerous_files", why, "quarantine")], why
    assert scanned(gateway, sent["extension .exe"]).findings[0].path == "tools.7z / bin/setup.exe"
    assert scanned(gateway, sent["type exe named .txt"]).findings[0].detected_type == "exe"

    signed = message(("report.txt", b"the report\r\n"), ("invoice.pdf.exe", b"pretend pdf"), subject="signed")
    signed = b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=s1; bh=x; b=y\r\n" + signed
    mid = queued_id(send(gateway.smtp_port, "bob@strip.test", signed)[1])
    got = primary.wait_for(1, timeout_s=120)[0].data
    note = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\nThe attachment "
            b"'invoice.pdf.exe' was removed by the mail gateway: invoice.pdf.exe matched the rule dangerous_files "
            b"(double extension .pdf.exe).\r\n")
    head, _ = signed.split(b"--=_b1\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"")
    expected = head + b"--=_b1\r\n" + note + b"\r\n--=_b1--\r\n"
    assert strip_added(got, 0) == expected  # the other parts and every header byte as sent
    s = scanned(gateway, mid)
    assert (s.action, s.body_signature_broken) == ("strip", True)


def test_reject_with_scan_at_data_refuses_a_dangerous_file_with_554_and_stores_nothing(gateway, primary, clamd):
    gateway.configure(gateways(primary.port, clamd,
                               strict={"scan_at_data": True, "attachments": {"dangerous_action": "reject"}}))
    gateway.start_broker()
    gateway.start_all()

    code, text = send(gateway.smtp_port, "bob@strict.test", message(("invoice.pdf.exe", b"x")))
    assert (code, text) == (554, "5.7.1 Message content rejected: dangerous file invoice.pdf.exe (rule "
                                 "dangerous_files: double extension .pdf.exe)")
    ok = queued_id(send(gateway.smtp_port, "bob@strict.test", message(("invoice.pdf", b"%PDF-1.4\n")))[1])
    gateway.wait_events(ok, "MessageDelivered", timeout_s=120)
    assert [r.message_id for r in records(gateway, topics.RECEIVED)] == [ok]
    [refusal] = [e for e in records(gateway, topics.EVENTS) if e.message_id != ok]  # the 554 is an event
    assert (type(refusal).__name__, refusal.action, refusal.scanned_at, refusal.rcpt_to) == (
        "MessageScanned", "reject", "ingress", ["bob@strict.test"])
    assert [(f.path, f.rule) for f in refusal.findings] == [("invoice.pdf.exe", "dangerous_files")]
