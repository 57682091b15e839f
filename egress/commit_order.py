"""Which offset of one partition egress may commit while its records are delivered concurrently and out of order.

Reads: the offsets egress starts handling, the ones it finished (delivered, deferred, bounced or handed on, and
acknowledged by Kafka), and the record it stopped at because it is not due yet. Emits: the commit point — the
first offset not finished (every record before it is done), never past the record the partition waits at. Pure
bookkeeping, no I/O: egress/consumer.py keeps one Lane per assigned partition.
"""
from __future__ import annotations


class Lane:
    """One partition's records in flight. Offsets are added in increasing order (a re-read after a seek may add
    offsets again; one already known keeps its state)."""

    def __init__(self) -> None:
        self._done: dict[int, bool] = {}
        self._high: int | None = None  # one past the highest offset added
        self.wait_at: int | None = None
        """The offset of a record not due yet: the partition was sought back to it and reads it again later."""

    def add(self, offset: int, done: bool = False) -> None:
        """Egress takes this record (done=True: nothing to do for it, e.g. handled ahead of its turn already)."""
        if offset not in self._done:
            self._done[offset] = done
        self._high = offset + 1 if self._high is None else max(self._high, offset + 1)

    def finish(self, offset: int) -> None:
        """The record's outcome is durable."""
        if offset in self._done:
            self._done[offset] = True

    def wait(self, offset: int) -> None:
        """The partition stops at this record (not due): nothing at or after it may be committed until it is read
        again. Records after it that were taken ahead stay in flight."""
        self.wait_at = offset if self.wait_at is None else min(self.wait_at, offset)

    def reading_from(self, offset: int) -> None:
        """A batch starting at `offset` arrived: if it is the record waited at (or before), it is read again now."""
        if self.wait_at is not None and offset <= self.wait_at:
            self.wait_at = None

    @property
    def running(self) -> int:
        return sum(1 for d in self._done.values() if not d)

    def commit_point(self) -> int | None:
        """The offset to commit (every record before it is done), or None if nothing was taken yet. Forgets the
        finished records before it."""
        point = self._high
        for off, done in self._done.items():
            if not done and (point is None or off < point):
                point = off
        if self.wait_at is not None and (point is None or self.wait_at < point):
            point = self.wait_at
        if point is None:
            return None
        for off in [o for o, d in self._done.items() if d and o < point]:
            del self._done[off]
        return point
