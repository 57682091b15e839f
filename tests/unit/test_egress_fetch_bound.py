"""Egress fetches no more records than fit in `delivery.max_bytes_in_flight` at the size of recent records: a
fetch of well-compressed 1 MB messages would otherwise bring hundreds at once, each decompressed in memory."""
from __future__ import annotations

from egress.consumer import RECORD_SIZE_HINT, RecordConsumer
from mailgate.core.config import parse_config

MiB = 1024 * 1024


def egress(max_bytes: int = 16 * MiB) -> RecordConsumer:
    e = RecordConsumer.__new__(RecordConsumer)  # no Kafka clients: only the in-flight bookkeeping is used
    e.cfg = parse_config({"delivery": {"max_bytes_in_flight": max_bytes, "max_records_in_flight": 200}})
    e._in_flight_state()
    return e


def seen(e: RecordConsumer, size: int, n: int = 1) -> None:
    for _ in range(n):
        e._saw(size)  # what _start does for each record it starts


def test_before_any_record_a_fetch_takes_what_fits_at_one_mebibyte_each():
    assert egress()._records_to_take(200) == 16 * MiB // RECORD_SIZE_HINT


def test_after_large_records_a_fetch_takes_only_what_fits_in_the_free_bytes():
    e = egress()
    seen(e, MiB)
    e._bytes = 10 * MiB  # ten in flight
    assert e._records_to_take(190) == 6


def test_small_records_fill_the_room():
    e = egress()
    seen(e, 5_000, n=400)
    assert e._records_to_take(200) == 200


def test_one_record_is_always_taken_however_large():
    e = egress(max_bytes=MiB)
    seen(e, 12 * MiB)
    assert e._records_to_take(200) == 1
