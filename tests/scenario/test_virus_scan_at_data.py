"""scan_at_data through the real broker and a real clamd: an infected message is refused at DATA with 554 5.7.1
naming the signature and nothing reaches mail.received, but the refusal is a MessageScanned (action reject, the
envelope) that `mailgate search --client/--state refused` and `mailgate trace` find; a clean message is scanned by
clamd once (clamd's own log), the processor reusing the verdict made at DATA; with clamd stopped (tempfail) the client
gets 451 4.3.0, nothing is stored but the 451's MessageScanned (action tempfail), and the same message is accepted and delivered once
clamd is back; a gateway without scan_at_data accepts the same message and holds it in quarantine."""
from __future__ import annotations

import asyncio
import json
import re
import smtplib
import time
from pathlib import Path

import pytest

from mailgate.core import topics
from mailgate.core.topic_reader import read_topic
from tests.scenario.test_spam_actions import strip_added
from tests.scenario.test_tracking import start_tracker, wait_caught_up
from tests.scenario.test_virus_scan import av_config, cli, scanned
from tests.scenario.test_walking_skeleton import queued_id
from tests.support.attachments import message, zipped
from tests.support.clamd import CLAMD, EICAR, EICAR_SIGNATURE, MARKER, MARKER_SIGNATURE, PEER_MISSING, running_clamd
from tests.support.ports import free_port

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
    cfg["metrics"] = {"tracker_port": free_port()}
    return cfg


def clamd_scans(workdir: Path) -> dict[str, int]:
    """Scans clamd itself logged (LogClean yes), by answer: OK, or FOUND (a signature)."""
    counts: dict[str, int] = {}
    for answer in re.findall(r"stream\([^)]*\): (?:\S+ )?(OK|FOUND)$", (workdir / "clamd.log").read_text(), re.M):
        counts[answer] = counts.get(answer, 0) + 1
    return counts


def events_soon(gateway, count: int, timeout_s: float = 30) -> list:
    """mail.events once it holds `count` records (refusals are appended in the background, after the reply)."""
    deadline = time.monotonic() + timeout_s
    while len(found := records(gateway, topics.EVENTS)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def search(gateway, *args: str) -> list[dict]:
    found = cli(gateway, "search", "--json", *args)
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout)


def test_infected_mail_is_refused_at_data_naming_the_signature_and_nothing_reaches_kafka(gateway, primary, tmp_path):
    with running_clamd(tmp_path / "clamd", LogClean="yes") as clamd:
        gateway.configure(with_scan_at_data(primary.port, [clamd.scanner]))
        gateway.start_broker()
        gateway.start_all()
        start_tracker(gateway)

        code, text = send(gateway.smtp_port, "bob@example.test", message(("invoice.zip", zipped(("e.com", EICAR)))))
        assert (code, text) == (554, f"5.7.1 Message content rejected: infected ({EICAR_SIGNATURE})")
        code, text = send(gateway.smtp_port, "bob@example.test", message(("m.txt", MARKER)))
        assert (code, text) == (554, f"5.7.1 Message content rejected: infected ({MARKER_SIGNATURE})")
        clean = queued_id(send(gateway.smtp_port, "bob@example.test", CLEAN)[1])
        # the other gateway does not scan at DATA: accepted, then held by the processor's scan
        held = queued_id(send(gateway.smtp_port, "carol@later.test", message(("e.com", EICAR)))[1])

        assert strip_added(primary.wait_for(1, timeout_s=120)[0].data, 0) == CLEAN
        gateway.wait_events(held, "MessageQuarantined", timeout_s=90)
        gateway.wait_events(clean, "MessageDelivered", timeout_s=90)
        assert sorted(r.message_id for r in records(gateway, topics.RECEIVED)) == sorted([clean, held])
        assert "reason=virus signatures=" + EICAR_SIGNATURE in gateway.logs()
        assert len(primary.messages) == 1

        # each refusal is an event of its own (never a MessageReceived): the verdict, action reject, the envelope
        refusals = [e for e in events_soon(gateway, 2 + 3 + 3) if e.message_id not in (clean, held)]
        assert [type(e).__name__ for e in refusals] == ["MessageScanned", "MessageScanned"]
        assert sorted((e.signatures, e.action, e.scanned_at, e.client_address, e.mail_from, e.rcpt_to, e.reply)
                      for e in refusals) == sorted(
            ([sig], "reject", "ingress", "127.0.0.1", "alice@sender.test", ["bob@example.test"],
             f"554 5.7.1 Message content rejected: infected ({sig})") for sig in (EICAR_SIGNATURE, MARKER_SIGNATURE))
        wait_caught_up(gateway)
        rows = search(gateway, "--client", "127.0.0.1", "--state", "refused")
        assert sorted(r["message_id"] for r in rows) == sorted(e.message_id for e in refusals)
        assert {r["virus"] for r in rows} == {f"infected: {EICAR_SIGNATURE}", f"infected: {MARKER_SIGNATURE}"}
        assert {(r["mail_from"], r["recipients"]) for r in rows} == {("alice@sender.test", "bob@example.test")}
        assert sorted(r["message_id"] for r in search(gateway, "--virus", "infected")) == sorted(
            [held] + [e.message_id for e in refusals])
        refused = next(e.message_id for e in refusals if e.signatures == [EICAR_SIGNATURE])
        shown = cli(gateway, "search", "--state", "refused").stdout
        assert f"<alice@sender.test> -> bob@example.test 554 5.7.1 Message content rejected: infected " \
               f"({EICAR_SIGNATURE})" in shown
        trace = cli(gateway, "trace", refused)
        assert trace.returncode == 0, trace.stderr
        assert f"infected: {EICAR_SIGNATURE}" in trace.stdout and "action reject" in trace.stdout
        assert "at DATA: replied 554 5.7.1" in trace.stdout and "state: refused" in trace.stdout

        # the clean message was scanned once, at DATA: the processor reused that verdict
        assert clamd_scans(clamd.workdir) == {"OK": 1, "FOUND": 3}  # 2 refused at DATA, 1 by the processor
        s = scanned(gateway, clean)
        assert (s.result, s.action, s.scanned_at, s.scanner) == ("clean", "deliver", "ingress",
                                                                 f"127.0.0.1:{clamd.port}")


def test_with_clamd_stopped_the_client_gets_451_and_is_accepted_once_clamd_is_back(gateway, primary, tmp_path):
    with running_clamd(tmp_path / "clamd") as clamd:
        gateway.configure(with_scan_at_data(primary.port, [clamd.scanner]))
        gateway.start_broker()
        gateway.start_all()
        clamd.stop()

        code, text = send(gateway.smtp_port, "bob@example.test", CLEAN)
        assert (code, text) == (451, "4.3.0 Error: virus scanner unavailable, try again later")
        assert records(gateway, topics.RECEIVED) == []
        [tempfailed] = events_soon(gateway, 1)  # the 451 is an event: result error, action tempfail
        assert (type(tempfailed).__name__, tempfailed.result, tempfailed.action, tempfailed.rcpt_to) == (
            "MessageScanned", "error", "tempfail", ["bob@example.test"])
        assert tempfailed.reply == "451 4.3.0 Error: virus scanner unavailable, try again later"

        clamd.start()
        code, text = send(gateway.smtp_port, "bob@example.test", CLEAN)
        assert code == 250, text
        mid = queued_id(text)
        assert strip_added(primary.wait_for(1, timeout_s=120)[0].data, 0) == CLEAN
        gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
        assert [r.message_id for r in records(gateway, topics.RECEIVED)] == [mid]
