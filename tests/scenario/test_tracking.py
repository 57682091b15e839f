"""Message tracking end to end, on SQLite and on a real PostgreSQL server: mail through the real broker and stages,
`mailgate tracker` projecting mail.events, and every reader answering from the store exactly what the scan of the
log answers — trace, each search filter, queue, quarantine — before and after a replay, and after `--rebuild`."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from mailgate.core import kafka, topics
from mailgate.ops.tracking.store import Store
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.scenario.test_observability import scrape, total
from tests.support.harness import ROOT, _wait_line, free_port
from tests.support.postgres import AVAILABLE as POSTGRES_AVAILABLE, running_postgres

pytestmark = pytest.mark.scenario

BODY = (b"From: Alice <alice@sender.test>\r\nTo: x@example.test\r\nSubject: %s\r\nMessage-ID: <%s@sender.test>\r\n"
        b"%s\r\nhello\r\n")


def body(tag: str, extra: bytes = b"") -> bytes:
    return BODY % (tag.encode(), tag.encode(), extra)


def mailgate(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=180)


def ok(gateway, *args: str) -> str:
    done = mailgate(gateway, *args)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def store_config(request, tmp_path):
    if request.param == "sqlite":
        yield {"store": "sqlite", "sqlite_path": str(tmp_path / "tracking.sqlite3")}
        return
    if not POSTGRES_AVAILABLE:
        pytest.skip("Debian's postgresql is not installed")
    with running_postgres() as dsn:
        yield {"store": "postgresql", "postgresql_dsn": dsn}


def configure(gateway, primary, store_config: dict) -> None:
    gateway.configure({
        "inbound_gateways": [{"name": "in1", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                              "primary_port": primary.port,
                              "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]},
                              "spam_actions": {"high": [{"action": "quarantine"}]}}],
        "spam": {"enabled": True, "scorers": [{"kind": "trusted_header", "trusted_ips": ["127.0.0.1"]}]},
        # One quick retry, then a long one: the log is quiet while the test compares.
        "delivery": {"retry_schedule_s": [1, 600]},
        "tracking": store_config,
        "metrics": {"tracker_port": free_port()},
    })
    primary.handler.script = lambda rcpts: ("550 5.1.1 no such user" if "reject@example.test" in rcpts else
                                            "451 4.3.0 try later" if "later@example.test" in rcpts else None)


def start_tracker(gateway, *args: str) -> None:
    p = gateway.start("tracker", wait=False) if not args else _start(gateway, args)
    _wait_line(gateway.workdir / f"tracker-{len(gateway.procs['tracker']) - 1}.log", "tracker consuming", p)


def _start(gateway, args):
    path = gateway.workdir / f"tracker-{len(gateway.procs.get('tracker', []))}.log"
    with open(path, "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", "tracker", *args, "--config",
                              str(gateway.config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                             start_new_session=True)
    gateway.procs.setdefault("tracker", []).append(p)
    return p


def wait_caught_up(gateway, timeout_s: float = 60) -> None:
    """Until the store's positions reach mail.events' end offsets."""
    async def ends() -> dict[int, int]:
        c = kafka.consumer(gateway.cfg, "test-ends", None, isolation_level="read_uncommitted")
        await c.start()
        try:
            tps = await kafka.assign_whole_topic(c, topics.EVENTS)
            return {tp.partition: o for tp, o in (await c.end_offsets(tps)).items()}
        finally:
            await c.stop()

    deadline = time.monotonic() + timeout_s
    want = asyncio.run(ends())
    while time.monotonic() < deadline:
        store = Store.open(gateway.cfg, create=False)
        try:
            have = store.positions(topics.EVENTS)
        finally:
            store.close()
        if all(have.get(p, 0) >= o for p, o in want.items()):
            return
        time.sleep(0.3)
    raise AssertionError(f"tracker at {have}, log ends at {want}")


def log_answers(events: list, message_ids: list[str]) -> dict:
    """What a scan of the log says about each message: its envelope and which recipients reached which end."""
    out = {}
    for mid in message_ids:
        evs = [e for e in events if getattr(e, "message_id", None) == mid]
        rec = next(e for e in evs if type(e).__name__ == "MessageReceived")
        ended = {"MessageDelivered": "delivered", "MessageBounced": "bounced", "DuplicateSuppressed": "delivered"}
        state = {}
        for e in evs:
            name = type(e).__name__
            if name in ended:
                state.update(dict.fromkeys(e.recipients, ended[name]))
            elif name == "DeliveryDeferred":
                state.update(dict.fromkeys((r for r in e.recipients if r not in state), "deferred"))
            elif name == "MessageQuarantined":
                state.update(dict.fromkeys(rec.rcpt_to, "quarantined"))
            elif name == "MessageDiscarded":
                state.update(dict.fromkeys(rec.rcpt_to, "discarded"))
        out[mid] = {"rec": rec, "states": set(state.values())}
    return out


def check_store_agrees_with_log(gateway, ids: list[str], cli: bool = False) -> None:
    """Store and log give the same answers (in-process; through the `mailgate` command too when `cli`)."""
    from mailgate.core.ids import now_ms
    from mailgate.ops import quarantine
    from mailgate.ops.audit.reader import describe
    from mailgate.ops.queue.view import build
    from mailgate.ops.tracking import queries

    wait_caught_up(gateway)
    log_events = gateway.events()
    scan = log_answers(log_events, ids)
    store = Store.open(gateway.cfg, create=False)
    try:
        for mid in ids:
            want = [describe(e) for e in log_events if getattr(e, "message_id", None) == mid]
            assert [describe(e) for e in queries.events(store, mid)] == want

        def found(**kw) -> set[str]:
            return {r["message_id"] for r in queries.search(store, queries.Search(**kw))} & set(ids)

        def expected(pred) -> set[str]:
            return {mid for mid, a in scan.items() if pred(a)}

        for rcpt in ("bob@example.test", "reject@example.test", "later@example.test", "spam1@example.test"):
            assert found(recipient=rcpt.upper()) == expected(lambda a: rcpt in a["rec"].rcpt_to) != set()
        assert found(sender="alice@sender.test") == expected(lambda a: a["rec"].mail_from == "alice@sender.test")
        assert found(domain="example.test") == set(ids)
        assert found(domain="sender.test") == expected(lambda a: a["rec"].mail_from.endswith("@sender.test"))
        assert found(client="127.0.0.1") == set(ids) and found(client="192.0.2.1") == set()
        assert found(gateway="in1") == expected(lambda a: a["rec"].inbound_gateway == "in1")
        assert found(header_message_id="ok-1@sender.test") == expected(
            lambda a: a["rec"].header_message_id == "<ok-1@sender.test>") != set()
        middle = sorted(a["rec"].occurred_at for a in scan.values())[1:3]
        assert found(since_ms=middle[0], until_ms=middle[1]) == expected(
            lambda a: middle[0] <= a["rec"].occurred_at <= middle[1])
        for state in ("delivered", "bounced", "deferred", "quarantined", "discarded"):
            assert found(state=state) == expected(lambda a: state in a["states"]) != set(), state
        now = now_ms()
        assert queries.waiting(store).shape(now) == asyncio.run(build(gateway.cfg)).shape(now) != []
        assert [q["message_id"] for q in queries.quarantined(store)] == list(asyncio.run(quarantine.held_from_log(gateway.cfg)))
    finally:
        store.close()
    if not cli:
        return
    for mid in ids[:2]:
        assert ok(gateway, "trace", mid) == ok(gateway, "trace", mid, "--from-log")
    searched = json.loads(ok(gateway, "search", "--json", "--recipient", "later@example.test", "--state", "deferred"))
    assert [r["message_id"] for r in searched] == [mid for mid, a in scan.items() if a["states"] == {"deferred"}]

    def shape(*args: str) -> list:
        return [{k: v for k, v in r.items() if k != "oldest_age_s"} for r in json.loads(ok(gateway, "queue", *args))]

    assert shape("--json") == shape("--json", "--from-log") != []
    assert ok(gateway, "quarantine", "list") == ok(gateway, "quarantine", "list", "--from-log")


def test_every_view_from_the_store_agrees_with_the_log_after_replay_and_rebuild(gateway, primary, store_config):
    configure(gateway, primary, store_config)
    gateway.start_broker()
    gateway.start_all()
    start_tracker(gateway)

    spam = b"X-Spam-Score: 15\r\n"
    sent = {tag: queued_id(send(gateway.smtp_port, rcpt, body(tag, extra), sender=sender)[1])
            for tag, rcpt, extra, sender in (("ok-1", "bob@example.test", b"", "alice@sender.test"),
                                              ("bounce-1", "reject@example.test", b"", ""),
                                              ("later-1", "later@example.test", b"", "carl@other.test"),
                                              ("spam-1", "spam1@example.test", spam, "alice@sender.test"),
                                              ("spam-2", "spam2@example.test", spam, "alice@sender.test"))}
    gateway.wait_events(sent["ok-1"], "MessageDelivered")
    gateway.wait_events(sent["bounce-1"], "MessageBounced")
    for tag in ("spam-1", "spam-2"):
        gateway.wait_events(sent[tag], "MessageQuarantined")
    deadline = time.monotonic() + 60  # deferred twice: now in the 600 s tier, and the log is quiet
    while gateway.event_types(sent["later-1"]).count("DeliveryDeferred") < 2:
        assert time.monotonic() < deadline, gateway.event_types(sent["later-1"])
        time.sleep(0.5)
    ok(gateway, "quarantine", "delete", sent["spam-2"], "--operator", "carol")
    ids = list(sent.values())

    check_store_agrees_with_log(gateway, ids, cli=True)
    # The tracker's lag is a metric: zero per partition once it has caught up.
    port = gateway.cfg.metrics.tracker_port
    deadline = time.monotonic() + 30
    while True:  # sampled every 5 s: wait for a sample taken after the catch-up
        samples = scrape(port)
        lags = [v for (name, _), v in samples.items() if name == "mailgate_tracker_consumer_lag"]
        if lags and sum(lags) == 0:
            break
        assert time.monotonic() < deadline, f"tracker lag samples: {lags}"
        time.sleep(1)
    assert total(samples, "mailgate_tracker_events_projected_total") >= len(gateway.events())
    shown = ok(gateway, "quarantine", "show", sent["spam-1"])
    assert "spam1@example.test" in shown and "Subject: spam-1" in shown
    listed = ok(gateway, "queue", "list")
    assert sent["later-1"] in listed and "later@example.test" in listed and sent["ok-1"] not in listed

    # An operator replay appends new events about a delivered message: the store follows, still agreeing.
    ok(gateway, "replay", "--topic", topics.RECEIVED, "--message-id", sent["ok-1"], "--from-offset", "0",
       "--reason", "tracking test")
    gateway.wait_events(sent["ok-1"], "DuplicateSuppressed")
    check_store_agrees_with_log(gateway, ids)

    # Dropped and rebuilt from the log, the store holds the very same rows.
    store = Store.open(gateway.cfg, create=False)
    tables = ("messages", "recipients", "events", "positions")
    before = [store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables]
    store.close()
    for p in gateway.procs.pop("tracker"):
        gateway.kill(p, 15)
    start_tracker(gateway, "--rebuild")
    check_store_agrees_with_log(gateway, ids)
    store = Store.open(gateway.cfg, create=False)
    assert [store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables] == before
    store.close()
