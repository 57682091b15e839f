"""Egress commits an offset only when every record before it is done, while records finish out of order."""
from egress.commit_order import Lane


def test_nothing_taken_commits_nothing():
    assert Lane().commit_point() is None


def test_a_record_finished_out_of_order_does_not_move_the_commit_past_an_unfinished_one():
    lane = Lane()
    for off in (10, 11, 12):
        lane.add(off)
    lane.finish(12)
    lane.finish(11)
    assert lane.commit_point() == 10
    lane.finish(10)
    assert lane.commit_point() == 13
    assert lane.running == 0


def test_a_record_not_due_caps_the_commit_even_when_records_taken_ahead_of_it_are_done():
    lane = Lane()
    lane.add(5)
    lane.finish(5)
    lane.wait(6)  # not due: the partition is sought back to 6
    lane.add(8)   # flushed by an operator: taken ahead of 6
    lane.finish(8)
    assert lane.commit_point() == 6
    lane.reading_from(9)  # a batch fetched before the seek: still waiting
    assert lane.commit_point() == 6
    lane.reading_from(6)  # read again from the waiting record
    lane.add(6)
    assert lane.commit_point() == 6
    lane.add(7)
    lane.add(8, done=True)  # skipped on the re-read: handled ahead already
    lane.finish(6)
    lane.finish(7)
    assert lane.commit_point() == 9


def test_a_record_taken_ahead_and_still_in_flight_stays_unfinished_when_read_again():
    lane = Lane()
    lane.wait(3)
    lane.add(4)  # taken ahead, still sending
    lane.reading_from(3)
    lane.add(3)
    lane.finish(3)
    lane.add(4, done=True)
    assert lane.commit_point() == 4
    lane.finish(4)
    assert lane.commit_point() == 5
