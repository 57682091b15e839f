"""The tracking projection against a real SQLite store: message states, idempotent replay, migration in place, and
the queue it answers agreeing with the fold `mailgate queue --from-log` runs over the same events."""
from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from mailgate.ops.queue.view import QueueView
from mailgate.ops.tracking import queries
from mailgate.ops.tracking import projector
from mailgate.ops.tracking.projector import fold, project
from mailgate.ops.tracking.schema import LATEST
from mailgate.ops.tracking.store import Store
from schemas import (DeliveryAttempted, DeliveryDeferred, MessageBounced, MessageClassified, MessageDelivered,
                     MessageDiscarded, MessageQuarantined, MessageReceived, MessageRouted, MessageScanned,
                     QuarantineReleased, RecipientRejected, RecipientResult, Route, ScorerScore, SmtpReply, encode)

T0 = 1_790_000_000_000


def received(mid, rcpts, at=T0, sender="alice@a.test", client="192.0.2.7", gateway="in1", hid=None):
    return MessageReceived(message_id=mid, occurred_at=at, node="n", direction="inbound", inbound_gateway=gateway,
                           client_address=client, client_helo="c.test", client_auth=None, tls=None, mail_from=sender,
                           rcpt_to=rcpts, size_bytes=1234, body_sha256="0" * 64, body=None, header_message_id=hid,
                           subject="hello")


def routed(mid, rcpts, at, dest="in1", tier=-1, since=T0):
    return MessageRouted(message_id=mid, occurred_at=at, node="n", direction="inbound",
                         route=Route(kind="primary", destination=dest, candidates=[dest], hosts=["127.0.0.1:25"]),
                         mail_from="alice@a.test", recipients=rcpts, received_at=since, not_before=at,
                         expires_at=at + 10 ** 7, attempt=0, retry_tier=tier, force_redeliver=False, body=None)


def attempted(mid, rcpt, code, at, attempt=1):
    return DeliveryAttempted(message_id=mid, occurred_at=at, node="n", attempt=attempt, gateway="in1",
                             host="127.0.0.1", port=25, tls_version=None, tls_cipher=None, recipients=[rcpt],
                             results=[RecipientResult(recipient=rcpt, reply=SmtpReply(code=code, enhanced_code=None,
                                                                                       text="said"))],
                             error=None, duration_ms=3)


def history() -> list:
    return [
        received("m1", ["bob@b.test", "carol@b.test"], hid="<one@a.test>"),
        MessageClassified(message_id="m1", occurred_at=T0 + 1, node="n", level="low", total_score=3.5,
                          scores=[ScorerScore(scorer="spamd", score=3.5, weight=1.0, error=None)],
                          actions=["add_header"]),
        routed("m1", ["bob@b.test", "carol@b.test"], T0 + 2),
        attempted("m1", "bob@b.test", 250, T0 + 3),
        MessageDelivered(message_id="m1", occurred_at=T0 + 4, node="n", recipients=["bob@b.test"], gateway="in1",
                         host="127.0.0.1", reply_text="250 ok", attempt=1, received_at=T0, forced=False),
        DeliveryDeferred(message_id="m1", occurred_at=T0 + 5, node="n", recipients=["carol@b.test"],
                         reason="451 try later", attempt=1, next_attempt_at=T0 + 1000,
                         retry_topic="mail.retry.1s"),
        received("m2", ["dan@b.test"], at=T0 + 10, sender="eve@e.test", client="198.51.100.1"),
        routed("m2", ["dan@b.test"], T0 + 11, since=T0 + 10),
        MessageBounced(message_id="m2", occurred_at=T0 + 12, node="n", recipients=["dan@b.test"],
                       reason="550 5.1.1 no such user", dsn_message_id=None),
        received("m3", ["fay@b.test"], at=T0 + 20),
        MessageQuarantined(message_id="m3", occurred_at=T0 + 21, node="n", level="high", total_score=12.0,
                           headers="From: x@spam.test\r\nSubject: win\r\n", routed=None),
        received("m4", ["gus@b.test"], at=T0 + 30),
        MessageQuarantined(message_id="m4", occurred_at=T0 + 31, node="n", level="high", total_score=11.0,
                           headers="Subject: y\r\n", routed=None),
        QuarantineReleased(message_id="m4", occurred_at=T0 + 32, node="n", operator="alice"),
        routed("m4", ["gus@b.test"], T0 + 33, since=T0 + 30),
        received("m5", ["hal@b.test"], at=T0 + 40),
        MessageDiscarded(message_id="m5", occurred_at=T0 + 41, node="n", reason="spam_delete", headers="",
                         operator=None),
    ]


def records(events, start=0):
    return [(0, start + i, encode(e)) for i, e in enumerate(events)]


@pytest.fixture
def store(tmp_path):
    s = Store.sqlite(tmp_path / "t.sqlite3")
    s.migrate()
    yield s
    s.close()


def dump(store: Store) -> list:
    return [store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in ("messages", "recipients", "events", "positions")]


def test_each_message_gets_the_state_its_events_say(store):
    project(store, records(history()))
    states = {r["message_id"]: r["state"] for r in store.rows("SELECT message_id, state FROM messages")}
    assert states == {"m1": "deferred", "m2": "bounced", "m3": "quarantined", "m4": "queued", "m5": "discarded"}
    m1 = queries.message(store, "m1")
    assert (m1["spam_level"], m1["spam_score"], m1["header_message_id"]) == ("low", 3.5, "<one@a.test>")
    assert {r["recipient"]: r["state"] for r in m1["recipient_states"]} == {"bob@b.test": "delivered",
                                                                         "carol@b.test": "deferred"}
    assert [q["message_id"] for q in queries.quarantined(store)] == ["m3"]


def test_replaying_any_range_changes_nothing(store):
    recs = records(history())
    project(store, recs[:7])
    project(store, recs)
    once = dump(store)
    assert project(store, recs[3:12]) == 0
    assert project(store, recs) == 0
    assert dump(store) == once


def test_search_filters(store):
    project(store, records(history()))

    def ids(**kw):
        return sorted(r["message_id"] for r in queries.search(store, queries.Search(**kw)))

    assert ids(recipient="BOB@b.test") == ["m1"]
    assert ids(sender="eve@e.test") == ["m2"]
    assert ids(domain="e.test") == ["m2"]
    assert ids(client="198.51.100.1") == ["m2"]
    assert ids(state="bounced") == ["m2"]
    assert ids(state="delivered") == ["m1"]
    assert ids(header_message_id="one@a.test") == ["m1"]
    assert ids(since_ms=T0 + 20, until_ms=T0 + 30) == ["m3", "m4"]
    assert ids(gateway="in1", limit=2) == ["m4", "m5"]


def test_queue_from_the_store_matches_the_fold_of_the_log(store):
    events = history()
    project(store, records(events))
    view = QueueView()
    for e in events:
        view.apply(e)
    now = T0 + 60_000
    assert queries.waiting(store).shape(now) == view.shape(now)
    assert [m["message_id"] for m in queries.queue_list(store)] == ["m1", "m4"]


def partly_delivered(mid="p1", at=T0 + 50) -> list:
    """One recipient accepted by the primary, the other refused 550: a partial delivery."""
    rcpts = ["ok@b.test", "gone@b.test"]
    return [received(mid, rcpts, at=at), routed(mid, rcpts, at + 1, since=at),
            MessageDelivered(message_id=mid, occurred_at=at + 2, node="n", recipients=["ok@b.test"], gateway="in1",
                             host="127.0.0.1", reply_text="250 ok", attempt=1, received_at=at, forced=False),
            MessageBounced(message_id=mid, occurred_at=at + 3, node="n", recipients=["gone@b.test"],
                           reason="550 5.1.1 no such user", dsn_message_id=None)]


def test_one_recipient_delivered_and_one_bounced_is_a_partial_delivery(store):
    project(store, records(history() + partly_delivered()))
    p1 = queries.message(store, "p1")
    assert p1["state"] == "partial"
    assert {r["recipient"]: (r["state"], r["reply"]) for r in p1["recipient_states"]} == {
        "ok@b.test": ("delivered", "250 ok"), "gone@b.test": ("bounced", "550 5.1.1 no such user")}
    assert queries.message(store, "m2")["state"] == "bounced"  # every recipient bounced: bounced
    found = lambda **kw: [r["message_id"] for r in queries.search(store, queries.Search(**kw))]  # noqa: E731
    assert found(state="partial") == ["p1"]
    assert "p1" in found(state="bounced") and "p1" in found(state="delivered")  # any recipient's state
    row = queries.search(store, queries.Search(recipient="gone@b.test"))[0]
    assert {r["recipient"]: r["state"] for r in row["recipient_states"]} == {"ok@b.test": "delivered",
                                                                             "gone@b.test": "bounced"}
    # trace --from-log folds the log the same way
    state, rc = fold([(type(e).__name__, dataclasses.asdict(e)) for e in partly_delivered()])
    assert state == "partial" and {r: v[0] for r, v in rc.items()} == {"ok@b.test": "delivered",
                                                                        "gone@b.test": "bounced"}


def test_an_old_store_is_migrated_in_place(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite3"
    old = Store.sqlite(path)
    assert old.migrate(upto=1) == 1
    # the projector of a release before version 5 wrote neither the DSN request nor the virus column
    before_v5 = tuple(c for c in projector.MESSAGE_COLUMNS if c not in ("dsn_request", "virus"))
    monkeypatch.setattr(projector, "MESSAGE_COLUMNS", before_v5)
    monkeypatch.setattr(projector, "_UPSERT_MESSAGE", projector.upsert_message_sql(before_v5))
    project(old, records(history() + partly_delivered()))
    monkeypatch.undo()
    old.run("UPDATE messages SET state = 'bounced' WHERE message_id = 'p1'")  # what releases before 3 kept
    old.close()
    monkeypatch.undo()
    new = Store.sqlite(path)
    assert new.migrate() == LATEST == 6
    assert new.version() == 6
    assert new.state() == {}  # version 4: which log the rows came from, not known for an old store
    assert queries.message(new, "m2")["state"] == "bounced"
    assert queries.message(new, "p1")["state"] == "partial"
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "messages_outbound_gateway" in indexes and "messages_virus" in indexes  # version 5: the virus verdict
    assert queries.message(new, "m2")["virus"] is None
    new.close()


def test_pruning_forgets_what_the_log_no_longer_holds_and_keeps_the_rest(store):
    """The store stays bounded: messages received, and events that occurred, before the cut-off (the tracker uses
    mail.events' retention) are forgotten; later ones are untouched and still searchable."""
    project(store, records(history()))
    assert store.prune(T0 + 10) == 1  # m1 was received at T0; m2 at T0 + 10 stays
    ids = [r["message_id"] for r in store.rows("SELECT message_id FROM messages ORDER BY 1")]
    assert ids == ["m2", "m3", "m4", "m5"]
    assert not store.rows("SELECT * FROM recipients WHERE message_id = 'm1'")
    assert not store.rows("SELECT * FROM events WHERE occurred_at < ?", (T0 + 10,))
    assert [m["message_id"] for m in queries.search(store, queries.Search(sender="eve@e.test"))] == ["m2"]


def test_an_outcome_logged_before_its_routing_still_stands(store):
    """The processor's MessageRouted can land in mail.events after egress's MessageDelivered for it (two producers):
    the message is delivered, not queued again, in the store and in the log fold of `mailgate queue`."""
    late = [received("r1", ["ivy@b.test"]),
            attempted("r1", "ivy@b.test", 250, T0 + 3),
            MessageDelivered(message_id="r1", occurred_at=T0 + 4, node="n", recipients=["ivy@b.test"],
                             gateway="in1", host="127.0.0.1", reply_text="250 ok", attempt=1, received_at=T0,
                             forced=False),
            routed("r1", ["ivy@b.test"], T0 + 2)]  # happened first, logged last
    project(store, records(late))
    assert queries.message(store, "r1")["state"] == "delivered"
    view = QueueView()
    for e in late:
        view.apply(e)
    assert view.waiting == {}



@pytest.mark.parametrize("refused_first", [True, False])  # two background writes: either may land first
def test_a_message_refused_at_data_by_the_virus_scan_is_a_refused_row_with_its_envelope(store, refused_first):
    rejected = RecipientRejected(message_id="d1", occurred_at=T0 + 70, node="n", recipient="nobody@b.test",
                                 stage="ingress", reason="unknown_user", reply_code=550, enhanced_code="5.1.1",
                                 client_address="192.0.2.9", mail_from="mal@e.test")
    refused = MessageScanned(message_id="d1", occurred_at=T0 + 71, node="n", scanner="127.0.0.1:3310",
                             duration_ms=5, result="infected", signatures=["Eicar"], action="reject",
                             scanned_at="ingress", reply="554 5.7.1 Message content rejected: infected (Eicar)",
                             client_address="192.0.2.9", mail_from="mal@e.test", rcpt_to=["bob@b.test"])
    project(store, records(history() + ([refused, rejected] if refused_first else [rejected, refused])))
    row = queries.message(store, "d1")
    assert (row["state"], row["client_address"], row["mail_from"], row["recipients"], row["virus"]) == (
        "refused", "192.0.2.9", "mal@e.test", "bob@b.test", "infected: Eicar")
    assert row["last_reply"] == refused.reply
    found = lambda **kw: [r["message_id"] for r in queries.search(store, queries.Search(**kw))]  # noqa: E731
    assert found(state="refused") == ["d1"] and found(client="192.0.2.9") == ["d1"]
