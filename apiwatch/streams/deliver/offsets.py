"""Which offsets may be committed: only those below the oldest record still being worked on.

Records of one partition finish out of order (a group flushes later than its
neighbours, a slow receiver answers after a fast one), so the committable
offset of a partition is the lowest unfinished offset, or one past the highest
seen when nothing is unfinished. A crash replays from there: at least once.

>>> t = OffsetTracker()
>>> for offset in (5, 6, 7):
...     t.begin(("alerts", 0), offset)
>>> t.done(("alerts", 0), 6); t.committable()
{('alerts', 0): 5}
>>> t.done(("alerts", 0), 5); t.committable()
{('alerts', 0): 7}
>>> t.done(("alerts", 0), 7); t.committable()
{('alerts', 0): 8}
"""

from __future__ import annotations

from collections.abc import Iterable

TopicPartition = tuple[str, int]


class OffsetTracker:
    """Unfinished offsets per partition; finished ones are forgotten."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def begin(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Mark finished; unknown partitions (revoked meanwhile) are ignored."""
        pending = self._pending.get(tp)
        if pending is not None:
            pending.discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition, the offset a commit may name (the next record to read)."""
        return {
            tp: min(pending) if pending else self._next[tp] for tp, pending in self._pending.items()
        }

    def to_commit(self) -> dict[TopicPartition, int]:
        """The committable offsets that moved since the last :meth:`committed` call."""
        return {
            tp: offset
            for tp, offset in self.committable().items()
            if self._committed.get(tp) != offset
        }

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def in_flight(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop partitions this worker no longer owns."""
        for tp in tps:
            self._pending.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
