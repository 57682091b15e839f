"""The delivered index forgets a pair only once no duplicate of it can arrive, and stays bounded as history grows."""
from __future__ import annotations

import time

from egress.delivered_index import DeliveredIndex
from mailgate.core import topics
from mailgate.core.config import parse_config

DAY_MS = 86400 * 1000


def index(**delivery) -> DeliveredIndex:
    return DeliveredIndex(parse_config({"delivery": delivery, "kafka": {"mail_retention_s": 8 * 86400}}))


def now_ms() -> int:
    return int(time.time() * 1000)


def test_lifetime_is_the_longest_time_a_message_can_come_back_plus_the_margin():
    idx = index(max_queue_lifetime_s=5 * 86400, backup_mx_queue_lifetime_s=7 * 86400, delivered_index_margin_s=3600)
    assert idx.lifetime_ms == 8 * DAY_MS + 3600 * 1000  # mail.received keeps records 8 days: a replay can return
    idx = index(max_queue_lifetime_s=10 * 86400, delivered_index_margin_s=0)
    assert idx.lifetime_ms == 10 * DAY_MS


def test_the_topic_deletes_what_the_index_forgets():
    cfg = parse_config({})
    spec = next(t for t in topics.declared_topics(cfg) if t.name == topics.DELIVERED)
    assert spec.config["cleanup.policy"] == "compact,delete"
    assert int(spec.config["retention.ms"]) == topics.delivered_lifetime_ms(cfg)


def test_a_delivered_pair_is_remembered_for_its_whole_lifetime_then_dropped():
    idx = index()
    written = now_ms()
    idx.apply("m1|a@x.test", b"1", written)
    assert idx.expire(written + idx.lifetime_ms - 1) == 0 and "m1|a@x.test" in idx
    assert idx.expire(written + idx.lifetime_ms + 1) == 1 and "m1|a@x.test" not in idx


def test_a_record_older_than_the_lifetime_is_not_loaded():
    idx = index()
    idx.apply("old|a@x.test", b"1", now_ms() - idx.lifetime_ms - 1000)
    idx.apply("old|b@x.test", b"sending", now_ms() - idx.lifetime_ms - 1000)
    assert "old|a@x.test" not in idx and not idx.was_sending("old|b@x.test")


def test_memory_follows_the_live_window_not_the_history():
    idx = index(delivered_index_margin_s=0)
    start = now_ms()  # four lifetimes of history from now on, one delivery per simulated minute
    step = 60_000
    peak = 0
    for i in range(4 * idx.lifetime_ms // step):
        at = start + i * step
        idx.apply(f"m{i}|r@x.test", b"1", at)
        if i % 1000 == 0:
            idx.expire(at)
        peak = max(peak, len(idx))
    live = idx.lifetime_ms // step
    assert live <= peak <= live + 1000 and len(idx) >= live - 1000


def test_a_later_delivery_of_the_same_pair_extends_its_life():
    idx = index()
    t0 = now_ms() - idx.lifetime_ms + 10_000
    idx.apply("m|a@x.test", b"1", t0)
    idx.apply("m|b@x.test", b"1", t0 + 1)
    idx.apply("m|a@x.test", b"1", t0 + 20_000)
    idx.expire(t0 + idx.lifetime_ms + 5)
    assert "m|a@x.test" in idx and "m|b@x.test" not in idx


def routed(rcpts, force: bool = False):
    from schemas import MessageRouted, Route
    now = now_ms()
    return MessageRouted(message_id="M", occurred_at=now, node="n", direction="outbound",
                         route=Route(kind="gateway", destination="gw", candidates=["gw"], hosts=[]),
                         mail_from="a@x.test", recipients=list(rcpts), received_at=now, not_before=now,
                         expires_at=now + 60_000, force_redeliver=force, body=b"")


def test_the_protocol_around_one_attempt_suppresses_writes_ahead_and_settles():
    """suppress → write_ahead → settle: what was delivered is left out (unless forced), what is sent is marked
    `sending` and named when an earlier attempt left it so, and the outcome leaves `1` for each delivered
    recipient, a tombstone for each other one, and the mark of one lost after DATA."""
    from schemas import MessageDelivered
    from mailgate.mail.outputs import audit
    idx = index()
    idx.apply("M|done@x.test", b"1")
    idx.apply("M|died@x.test", b"sending")
    todo, out = idx.suppress(routed(["done@x.test", "died@x.test", "ok@x.test", "lost@x.test", "no@x.test"]), "n")
    assert todo == ["died@x.test", "ok@x.test", "lost@x.test", "no@x.test"]
    assert [type(o.record).__name__ for o in out] == ["DuplicateSuppressed"] and out[0].record.recipients == [
        "done@x.test"]
    assert idx.suppress(routed(["done@x.test"], force=True), "n") == (["done@x.test"], [])
    ahead = idx.write_ahead("M", todo)
    assert ahead.unknown == ["died@x.test"]
    assert [(o.topic, o.key, o.record) for o in ahead.marks][:1] == [(topics.DELIVERED, "M|died@x.test", b"sending")]
    ahead.lost.append("lost@x.test")
    delivered = audit(MessageDelivered(message_id="M", occurred_at=now_ms(), node="n",
                                       recipients=["died@x.test", "ok@x.test"], gateway="gw", host="h",
                                       reply_text="250 ok", attempt=1, received_at=now_ms()))
    settled = idx.settle(ahead, [delivered])
    assert [(o.key, o.record) for o in settled] == [("M|died@x.test", b"1"), ("M|ok@x.test", b"1"),
                                                    ("M|no@x.test", None)]
    assert "M|ok@x.test" in idx and not idx.was_sending("M|died@x.test")
