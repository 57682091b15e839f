"""The queue control fold (mailgate.mail.queue_commands): which order stands on a message, which suspension covers a
routed message, and which waiting records a command makes due now."""
from __future__ import annotations

from mailgate.mail.queue_commands import QueueControlState, Retention
from schemas import DestinationResumed, DestinationSuspended, MessageRouted, QueueCommandIssued, Route


def cmd(command: str, mid: str | None = "M1", at: int = 100, kind=None, name=None) -> QueueCommandIssued:
    return QueueCommandIssued(command_id=f"C{at}", occurred_at=at, node="cli", command=command, message_id=mid,
                              destination_kind=kind, destination_name=name, operator="olga", reason="why")


def routed(mid: str = "M1", at: int = 50, dest: str = "relay", kind: str = "gateway",
           rcpts=("bob@far.test",)) -> MessageRouted:
    return MessageRouted(message_id=mid, occurred_at=at, node="n", direction="outbound",
                         route=Route(kind=kind, destination=dest, candidates=[dest], hosts=[]),
                         mail_from="a@b.test", recipients=list(rcpts), received_at=1, not_before=10_000,
                         expires_at=99_999)


def suspended(kind: str, name: str, until=None, at: int = 100) -> DestinationSuspended:
    return DestinationSuspended(command_id=f"S{at}", occurred_at=at, node="cli", kind=kind, name=name,
                                operator="olga", reason="maintenance", until=until)


def test_release_ends_a_hold_but_nothing_undoes_a_delete():
    s = QueueControlState()
    s.apply(cmd("hold"))
    assert s.order("M1").command == "hold"
    s.apply(cmd("release", at=200))
    assert s.order("M1") is None
    s.apply(cmd("delete", at=300))
    s.apply(cmd("release", at=400))
    assert s.order("M1").command == "delete"


def test_a_flush_makes_only_records_written_before_it_due_and_does_not_release_a_hold():
    s = QueueControlState()
    s.apply(cmd("hold", at=90))
    s.apply(cmd("flush", at=100))
    assert s.urgent(routed(at=50)) and not s.urgent(routed(at=150))  # deferred again after the flush: waits
    assert s.order("M1").command == "hold"
    assert not s.urgent(routed(mid="M2"))


def test_delete_and_bounce_are_due_at_once():
    s = QueueControlState()
    s.apply(cmd("bounce", mid="M2"))
    assert s.urgent(routed(mid="M2", at=10**12))


def test_suspension_by_gateway_primary_or_recipient_domain_until_resumed_or_its_end():
    s = QueueControlState()
    s.apply(suspended("outbound", "relay"))
    s.apply(suspended("inbound", "home"))
    s.apply(suspended("domain", "slow.test", until=1_000))
    assert s.suspension(routed(), 0).name == "relay"
    assert s.suspension(routed(dest="home", kind="primary"), 0).name == "home"
    assert s.suspension(routed(dest="home", kind="gateway"), 0) is None  # an outbound gateway of the same name
    assert s.suspension(routed(dest="other", rcpts=["x@Slow.test"]), 999).name == "slow.test"
    assert s.suspension(routed(dest="other", rcpts=["x@slow.test"]), 1_000) is None  # ended by itself
    assert s.next_expiry(0) == 1_000
    s.apply(DestinationResumed(command_id="R", occurred_at=200, node="cli", kind="outbound", name="relay",
                               operator="olga", reason="done"))
    assert s.suspension(routed(), 0) is None


def test_a_destination_flush_makes_its_deferred_mail_due():
    s = QueueControlState()
    s.apply(cmd("flush", mid=None, kind="outbound", name="relay"))
    assert s.urgent(routed(at=50)) and not s.urgent(routed(dest="other", at=50))


KEEP = Retention(flush_ms=1_000, final_ms=10_000)


def folded(*records) -> QueueControlState:
    """A fold of (key, event or None, supersedes) records at offsets 0, 1, 2..."""
    s = QueueControlState()
    for offset, (key, e, sup) in enumerate(records):
        s.apply_record(key, offset, e, sup)
    return s


def test_finished_commands_get_tombstones_and_standing_ones_stay():
    s = folded(("message/M1", cmd("hold", "M1"), None), ("message/M2", cmd("release", "M2"), None),
               ("message/M3", cmd("delete", "M3"), None), ("flush/message/M4", cmd("flush", "M4"), None),
               ("destination/outbound/a", suspended("outbound", "a"), None),
               ("destination/outbound/b", suspended("outbound", "b", until=500), None))
    assert s.finished(100 + 999, KEEP) == []
    assert s.finished(100 + 1_000, KEEP) == [("message/M2", 1), ("flush/message/M4", 3)]
    day = 86_400_000
    assert [k for k, _ in s.finished(500 + day, KEEP)] == ["message/M2", "message/M3", "flush/message/M4",
                                                            "destination/outbound/b"]
    assert s.rewrites() == []


def test_a_tombstone_forgets_what_its_record_set():
    s = folded(("message/M2", cmd("hold", "M2", at=90), None), ("message/M2", cmd("release", "M2"), None),
               ("message/M3", cmd("delete", "M3"), None), ("destination/outbound/b", suspended("outbound", "b", 500), None),
               ("message/M2", None, 1), ("message/M3", None, 2), ("destination/outbound/b", None, 3))
    assert s.orders == {} and s.suspensions == {} and s.latest == {}


def test_a_tombstone_that_lost_the_race_to_a_newer_command_is_ignored_and_the_command_written_again():
    hold = cmd("hold", "M1", at=200)
    s = folded(("message/M1", cmd("release", "M1"), None), ("message/M1", hold, None), ("message/M1", None, 0))
    assert s.order("M1") is hold  # the operator's hold, written after the tombstone's target, stands
    assert s.rewrites() == [("message/M1", 1, hold)]  # compaction would keep the tombstone, not the hold
    s.apply_record("message/M1", 3, hold, 1)  # the rewrite
    s.apply_record("message/M1", 4, hold, 1)  # another replica's: the same record, no new race
    assert s.rewrites() == [] and s.order("M1") == hold and s.finished(10**12, KEEP) == []


def test_a_standing_order_that_a_later_record_of_its_key_hides_is_written_again_before_any_tombstone():
    delete = cmd("delete", "M1")
    s = folded(("message/M1", delete, None), ("message/M1", cmd("release", "M1", at=150), None))
    assert s.order("M1") is delete  # nothing undoes a delete...
    assert s.rewrites() == [("message/M1", 1, delete)]  # ...but compaction would keep only the release
    assert s.finished(10**12, KEEP) == []
