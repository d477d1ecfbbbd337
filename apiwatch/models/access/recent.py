"""Sliding-window bookkeeping: a capped set of recent values, and per-window counters.

:class:`RecentSet` keeps each distinct value with the last event time it was
seen, up to a cap (the oldest value is evicted first), so "how many distinct
X since t" is exact while the set holds fewer than ``cap`` values and reads
"at least cap" beyond. :class:`WindowSeries` keeps a few numbers per
micro-window start and sums them over any trailing span. Both merge records
of the same window from several source partitions, accept them out of order,
forget what is older than their horizon, and are JSON-able.

>>> s = RecentSet(cap=3)
>>> for v, t in [("a", 1), ("b", 2), ("c", 3), ("a", 4), ("d", 5)]:
...     s.add(v, t)
>>> sorted(s.values), s.count_since(4)
(['a', 'c', 'd'], 2)
>>> w = WindowSeries(width=2)
>>> w.add(0, [1, 0]); w.add(10, [2, 1]); w.add(0, [1, 1])
>>> w.sum_since(0), w.sum_since(5), w.windows_since(0)
([4, 2], [2, 1], 2)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class RecentSet:
    """Distinct values with their last-seen time, capped; oldest evicted first."""

    __slots__ = ("cap", "values")

    def __init__(self, cap: int, values: dict[str, int] | None = None) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.values: dict[str, int] = dict(values or {})

    @classmethod
    def adopt(cls, cap: int, values: dict[str, int]) -> RecentSet:
        """Take over ``values`` (our own saved state) without copying: loading is hot."""
        s = cls.__new__(cls)
        s.cap, s.values = cap, values
        return s

    def add(self, value: str, t_ms: int) -> None:
        old = self.values.get(value)
        if old is None or t_ms > old:
            self.values[value] = t_ms
        if len(self.values) > self.cap:
            oldest = min(self.values, key=lambda v: (self.values[v], v))
            del self.values[oldest]

    def update(self, values: Iterable[str], t_ms: int) -> None:
        for v in values:
            self.add(v, t_ms)

    def count_since(self, since_ms: int) -> int:
        return sum(1 for t in self.values.values() if t >= since_ms)

    def since(self, since_ms: int) -> list[str]:
        """Values seen at or after ``since_ms``, most recent first."""
        return [v for v, t in sorted(self.values.items(), key=lambda vt: -vt[1]) if t >= since_ms]

    def prune(self, before_ms: int) -> None:
        if self.values and min(self.values.values()) < before_ms:
            self.values = {v: t for v, t in self.values.items() if t >= before_ms}

    def __len__(self) -> int:
        return len(self.values)

    def to_state(self) -> dict[str, int]:
        """The values themselves, not a copy: state is saved and dropped, never shared."""
        return self.values


class WindowSeries:
    """A fixed number of counters per micro-window start, kept sorted by start."""

    __slots__ = ("rows", "starts", "width")

    def __init__(self, width: int, rows: list[list[int]] | None = None) -> None:
        self.width = width
        self.rows: list[list[int]] = sorted((list(r) for r in rows or []), key=lambda r: r[0])
        self.starts = [r[0] for r in self.rows]

    @classmethod
    def adopt(cls, width: int, rows: list[list[int]]) -> WindowSeries:
        """Take over ``rows`` (our own saved state, already sorted) without copying."""
        s = cls.__new__(cls)
        s.width, s.rows = width, rows
        s.starts = [r[0] for r in rows]
        return s

    def add(self, start_ms: int, values: list[int], combine_max: Iterable[int] = ()) -> None:
        """Add counters to the window at ``start_ms``; indexes in ``combine_max`` take the max."""
        if len(values) != self.width:
            raise ValueError(f"expected {self.width} values, got {len(values)}")
        starts = self.starts
        if not starts or start_ms > starts[-1]:  # the usual case: a new, latest window
            starts.append(start_ms)
            self.rows.append([start_ms, *values])
            return
        i = bisect.bisect_left(starts, start_ms)
        if i < len(starts) and starts[i] == start_ms:
            row = self.rows[i]
            maxed = combine_max if isinstance(combine_max, frozenset) else set(combine_max)
            for j, v in enumerate(values):
                row[j + 1] = max(row[j + 1], v) if j in maxed else row[j + 1] + v
            return
        starts.insert(i, start_ms)
        self.rows.insert(i, [start_ms, *values])

    def _from(self, since_ms: int) -> Iterator[list[int]]:
        return iter(self.rows[bisect.bisect_left(self.starts, since_ms) :])

    def sum_since(self, since_ms: int) -> list[int]:
        i = bisect.bisect_left(self.starts, since_ms)
        rows = self.rows
        if i >= len(rows):
            return [0] * self.width
        if i == len(rows) - 1:
            return rows[i][1:]
        return [sum(column) for column in zip(*rows[i:], strict=True)][1:]

    def windows_since(self, since_ms: int) -> int:
        return len(self.starts) - bisect.bisect_left(self.starts, since_ms)

    def rows_since(self, since_ms: int) -> list[list[int]]:
        return list(self._from(since_ms))

    def prune(self, before_ms: int) -> None:
        i = bisect.bisect_left(self.starts, before_ms)
        if i:
            del self.rows[:i]
            del self.starts[:i]

    def to_state(self) -> list[list[int]]:
        """The rows themselves, not a copy: state is saved and dropped, never shared."""
        return self.rows
