"""The tracking store's binding to its log (pure logic over a SQLite store): a store of another cluster, another
topic, or with positions beyond the log's ends is refused or emptied, never projected into as it is."""
from __future__ import annotations

import json

from mailgate.ops.tracking.log_identity import LogIdentity, mismatch
from mailgate.ops.tracking.rebuild import Progress, bind, reader_note
from mailgate.ops.tracking.store import Store

TOPIC = "mail.events"
LOG = LogIdentity("cluster-a", "topic-a", ends={0: 10, 1: 5}, beginnings={0: 0, 1: 0})


def test_a_store_of_the_same_log_matches():
    assert mismatch({"cluster_id": "cluster-a", "topic_id/mail.events": "topic-a"}, {0: 10, 1: 3}, LOG, TOPIC) is None
    assert mismatch({}, {}, LOG, TOPIC) is None  # empty, or from a release that recorded no identity


def test_another_cluster_another_topic_or_a_position_beyond_the_end_is_named():
    assert "cluster cluster-b" in mismatch({"cluster_id": "cluster-b"}, {}, LOG, TOPIC)
    assert "topic id topic-b" in mismatch({"cluster_id": "cluster-a", "topic_id/mail.events": "topic-b"}, {}, LOG,
                                          TOPIC)
    reason = mismatch({}, {0: 11}, LOG, TOPIC)
    assert "position 11" in reason and "partition 0" in reason and "end 10" in reason


def test_refuse_keeps_the_rows_and_records_why_rebuild_empties_and_binds(tmp_path):
    store = Store.sqlite(tmp_path / "t.sqlite3")
    store.migrate()
    store.save_positions(TOPIC, {0: 10})
    store.set_state({"cluster_id": "cluster-b"})
    assert "cluster cluster-b" in bind(store, LOG, TOPIC, rebuild=False, on_mismatch="refuse")
    assert store.positions(TOPIC) == {0: 10} and "does not belong" in reader_note(store)
    assert bind(store, LOG, TOPIC, rebuild=False, on_mismatch="rebuild") is None
    assert store.positions(TOPIC) == {}
    state = store.state()
    assert state["cluster_id"] == "cluster-a" and state["topic_id/mail.events"] == "topic-a"
    assert json.loads(state["rebuild"])["total"] == 15 and "being rebuilt" in reader_note(store)


def test_a_rebuild_ends_when_the_ends_of_its_start_are_reached(tmp_path):
    store = Store.sqlite(tmp_path / "t.sqlite3")
    store.migrate()
    bind(store, LOG, TOPIC, rebuild=True, on_mismatch="refuse")
    progress = Progress.of(store, LOG)
    assert not progress.advance([(0, o, b"") for o in range(10)])
    assert "10 of 15 events projected" in progress.line()
    assert progress.advance([(1, o, b"") for o in range(5)])
    assert "rebuild" not in store.state() and reader_note(store) is None
