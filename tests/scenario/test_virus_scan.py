"""Virus scanning end to end through the real broker and a real clamd (the test's own signature database):
EICAR attached, zipped and zipped inside a zip is quarantined with its signature in trace and search, released only
with --confirm-malware; clean mail is delivered byte-identical; archives nested deeper than the limit and an
encrypted zip get the unscannable action; with clamd stopped the message waits and is delivered once clamd is back
(tempfail), or is delivered with an `Unscanned` verdict (accept); with two clamd hosts and one stopped the scans go
to the other."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.scenario.test_spam_actions import strip_added
from tests.scenario.test_observability import scrape, total
from tests.scenario.test_spam_scanner_down import wait_log
from tests.scenario.test_tracking import start_tracker, wait_caught_up
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.attachments import BSDTAR, BSDTAR_MISSING, encrypted_zip, message, nested_zip, zipped
from tests.support.clamd import CLAMD, EICAR, EICAR_SIGNATURE, PEER_MISSING, running_clamd
from tests.support.harness import ROOT
from tests.support.ports import free_port

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(CLAMD is None, reason=PEER_MISSING)]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    with running_clamd(tmp_path_factory.mktemp("clamd")) as server:
        yield server


def av_config(primary_port: int, scanners: list[dict], virus: dict | None = None, **antivirus) -> dict:
    gateway = {"name": "in", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "primary_port": primary_port,
               "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}
    if virus is not None:
        gateway["virus"] = virus
    return {"antivirus": {"enabled": True, "scanners": scanners, "retry_first_s": 0.5, "retry_max_s": 2, **antivirus},
            "inbound_gateways": [gateway]}


def cli(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)


def scanned(gateway, mid: str):
    return next(e for e in gateway.events(mid) if type(e).__name__ == "MessageScanned")


CLEAN = message(("report.zip", zipped(("report.txt", b"quarterly numbers\r\n"))), subject="clean",
                message_id="<clean-1@sender.test>")


def test_eicar_attached_zipped_and_in_a_zip_in_a_zip_is_quarantined_and_clean_mail_is_delivered_byte_identical(
        gateway, primary, clamd):
    gateway.configure({**av_config(primary.port, [clamd.scanner]), "metrics": {"tracker_port": free_port()}})
    gateway.start_broker()
    gateway.start_all()
    start_tracker(gateway)

    infected = {kind: queued_id(send(gateway.smtp_port, "bob@example.test", message((name, data), subject=kind))[1])
                for kind, name, data in (("attached", "eicar.com", EICAR),
                                         ("zipped", "invoice.zip", zipped(("eicar.com", EICAR))),
                                         ("zip-in-zip", "outer.zip", nested_zip(2, "eicar.com", EICAR)))}
    clean = queued_id(send(gateway.smtp_port, "bob@example.test", CLEAN)[1])

    got = primary.wait_for(1, timeout_s=120)
    assert strip_added(got[0].data, 0) == CLEAN  # byte-identical but for our Received header
    for kind, mid in infected.items():
        assert gateway.wait_events(mid, "MessageQuarantined", timeout_s=90) == [
            "MessageReceived", "MessageScanned", "MessageQuarantined"], kind
        s = scanned(gateway, mid)
        assert (s.result, s.signatures, s.action) == ("infected", [EICAR_SIGNATURE], "quarantine"), kind
        assert s.scanner == f"127.0.0.1:{clamd.port}" and s.attempts == 1
    s = scanned(gateway, clean)
    assert (s.result, s.action, s.signatures) == ("clean", "deliver", [])

    mid = infected["zip-in-zip"]
    trace = cli(gateway, "trace", mid)
    assert trace.returncode == 0, trace.stderr
    line = next(ln for ln in trace.stdout.splitlines() if "MessageScanned" in ln)
    assert f"infected: {EICAR_SIGNATURE}; scanner 127.0.0.1:{clamd.port} in " in line and "action quarantine" in line
    assert "level=virus" in trace.stdout and "state: quarantined" in trace.stdout
    wait_caught_up(gateway)
    found = cli(gateway, "search", "--virus", "infected", "--json")
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert sorted(r["message_id"] for r in rows) == sorted(infected.values())
    assert {r["virus"] for r in rows} == {f"infected: {EICAR_SIGNATURE}"}
    assert "virus infected: " + EICAR_SIGNATURE in cli(gateway, "search", "--virus", "infected").stdout

    refused = cli(gateway, "quarantine", "release", mid, "--operator", "alice")
    assert refused.returncode == 1 and "--confirm-malware" in refused.stdout
    assert len(primary.messages) == 1
    released = cli(gateway, "quarantine", "release", mid, "--operator", "alice", "--confirm-malware")
    assert released.returncode == 0, released.stdout + released.stderr
    assert len(primary.wait_for(2, timeout_s=90)) == 2
    gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    audit = [e for e in gateway.events(mid) if type(e).__name__ == "QuarantineReleased"]
    assert [(e.operator, e.malware_confirmed) for e in audit] == [("alice", True)]
    assert "malware_confirmed=True" in cli(gateway, "trace", mid, "--from-log").stdout


@pytest.mark.skipif(BSDTAR is None, reason=BSDTAR_MISSING)
def test_archives_nested_deeper_than_the_limit_and_an_encrypted_zip_get_the_unscannable_action(gateway, primary, clamd):
    gateway.configure(av_config(primary.port, [clamd.scanner], virus={"unscannable": "deliver_and_tag"},
                                archive_max_depth=3))
    gateway.start_broker()
    gateway.start_all()

    deep = queued_id(send(gateway.smtp_port, "bob@example.test",
                          message(("deep.zip", nested_zip(4, "notes.txt", b"just text")), subject="deep"))[1])
    locked = queued_id(send(gateway.smtp_port, "bob@example.test",
                            message(("secret.zip", encrypted_zip("plan.txt", b"the plan")), subject="locked"))[1])
    inside = queued_id(send(gateway.smtp_port, "bob@example.test",
                            message(("ok.zip", nested_zip(3, "notes.txt", b"just text")), subject="three"))[1])

    got = {m.data.split(b"Subject: ", 1)[1][:5]: m.data for m in primary.wait_for(3, timeout_s=120)}
    assert got[b"deep\r"].startswith(b"X-Virus-Status: Unscannable (archives nested deeper than 3 (deep.zip / ")
    assert got[b"locke"].startswith(b"X-Virus-Status: Unscannable (encrypted archive member secret.zip / plan.txt)")
    assert not got[b"three"].startswith(b"X-Virus-Status")  # three levels are within the limit: clean
    for mid in (deep, locked):
        s = scanned(gateway, mid)
        assert (s.result, s.action) == ("unscannable", "deliver_and_tag")
    assert scanned(gateway, inside).result == "clean"


def test_with_clamd_stopped_the_message_waits_and_is_delivered_once_clamd_is_back(gateway, primary, tmp_path):
    with running_clamd(tmp_path / "clamd") as own:
        gateway.configure(av_config(primary.port, [own.scanner]))
        gateway.start_broker()
        gateway.start_all()
        own.stop()

        mid = queued_id(send(gateway.smtp_port, "bob@example.test", CLEAN)[1])
        wait_log(gateway, f"virus scan of {mid} failed (try 2)")
        assert primary.messages == [] and gateway.event_types(mid) == ["MessageReceived"]

        own.start()
        got = primary.wait_for(1, timeout_s=120)
        assert strip_added(got[0].data, 0) == CLEAN
        gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
        s = scanned(gateway, mid)
        assert s.result == "clean" and s.attempts >= 2 and len(primary.messages) == 1


def test_under_accept_mail_is_delivered_unscanned_with_a_verdict_that_says_so(gateway, primary):
    nobody = free_port()
    gateway.configure(av_config(primary.port, [{"port": nobody}], when_unavailable="accept"))
    gateway.start_broker()
    gateway.start_all()

    mid = queued_id(send(gateway.smtp_port, "bob@example.test", CLEAN)[1])
    got = primary.wait_for(1, timeout_s=120)
    assert got[0].data.startswith(b"X-Virus-Status: Unscanned (no scanner answered: 127.0.0.1:")
    assert strip_added(got[0].data, 1) == CLEAN
    gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
    s = scanned(gateway, mid)
    assert (s.result, s.action, s.scanner) == ("error", "deliver_and_tag", "")
    assert s.failed_scanners[0].startswith(f"127.0.0.1:{nobody}: cannot connect")


def test_with_two_clamd_hosts_and_one_stopped_the_scans_go_to_the_other(gateway, primary, clamd, tmp_path):
    metrics_port = free_port()
    with running_clamd(tmp_path / "first") as first:
        gateway.configure({**av_config(primary.port, [first.scanner, clamd.scanner]),
                           "metrics": {"processor_port": metrics_port, "ingress_port": 0, "egress_port": 0}})
        gateway.start_broker()
        gateway.start_all()
        first.stop()

        ids = [queued_id(send(gateway.smtp_port, "bob@example.test",
                              message(("eicar.com", EICAR), message_id=f"<two-{i}@sender.test>"))[1])
               for i in range(3)]
        for mid in ids:
            gateway.wait_events(mid, "MessageQuarantined", timeout_s=90)
        verdicts = [scanned(gateway, mid) for mid in ids]
        assert {(s.scanner, s.result) for s in verdicts} == {(f"127.0.0.1:{clamd.port}", "infected")}
        assert verdicts[0].failed_scanners[0].startswith(f"127.0.0.1:{first.port}: cannot connect")
        assert verdicts[-1].failed_scanners == []  # the stopped host is asked after the other for a while
        assert all(s.attempts == 1 for s in verdicts) and primary.messages == []
        # the processor's metrics: tries per host and outcome, latency per host, verdicts with their action
        samples = scrape(metrics_port)
        assert total(samples, "mailgate_clamd_scans_total", host=f"127.0.0.1:{first.port}", outcome="error") == 1
        assert total(samples, "mailgate_clamd_scans_total", host=f"127.0.0.1:{clamd.port}", outcome="infected") == 3
        assert total(samples, "mailgate_clamd_scan_seconds_count", host=f"127.0.0.1:{clamd.port}") == 3
        assert total(samples, "mailgate_processor_virus_verdicts_total", result="infected",
                     action="quarantine") == 3
