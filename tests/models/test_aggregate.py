"""BucketFolder: event-time buckets folded batch by batch, checked against a plain model.

The reference below follows the documented rules only: a bucket closes once the
watermark (the slowest partition's latest event time) reaches its end plus the
allowed lateness; an event for a closed bucket is late; every series seen within
the ttl gets a summary per closed bucket; a partition may be committed up to the
first offset still held in an open bucket.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.aggregate import BucketFolder
from apiwatch.models.buckets import BucketSummary, rum_series_key

W = 10_000  # bucket width in ms
T0 = 1_767_225_600_000
SERIES = [
    rum_series_key("production", "shop", m, r)
    for m, r in [("GET", "/a"), ("POST", "/b/{id}"), ("GET", "/c"), ("DELETE", "/d")]
]
FAST = settings(max_examples=60, deadline=None)

Event = tuple[int, int, int, float]  # series index, ts_ms, status, duration_ms


def fold(
    f: BucketFolder,
    partition: int,
    events: list[Event],
    offsets: list[int],
    next_offset: int | None = None,
) -> None:
    f.fold(
        partition,
        [SERIES[s] for s, _, _, _ in events],
        np.array([t for _, t, _, _ in events], dtype=np.int64),
        np.array([c for _, _, c, _ in events], dtype=np.int64),
        np.array([d for _, _, _, d in events], dtype=np.float64),
        first_offset=offsets[0] if offsets else 0,
        offsets=np.array(offsets, dtype=np.int64) if offsets else None,
        next_offset=next_offset,
    )


# -- the reference model ----------------------------------------------------------------


@dataclass
class Reference:
    lateness_ms: int
    ttl_buckets: int
    closed_through: int | None = None
    watermarks: dict[int, int] = field(default_factory=dict)
    next_offset: dict[int, int] = field(default_factory=dict)
    cells: dict[tuple[int, int], list[Event]] = field(default_factory=lambda: defaultdict(list))
    open_offsets: dict[tuple[int, int], list[tuple[int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    first: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    late: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    order: list[int] = field(default_factory=list)  # series in order of first sight

    def fold(self, partition: int, events: list[Event], offsets: list[int], nxt: int) -> None:
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), nxt)
        for ev, off in zip(events, offsets, strict=True):
            s, t, _, _ = ev
            if s not in self.order:
                self.order.append(s)
            self.watermarks[partition] = max(self.watermarks.get(partition, t), t)
            b = t // W
            if self.closed_through is not None and b <= self.closed_through:
                self.late[s] += 1
                continue
            self.cells[(s, b)].append(ev)
            self.open_offsets[(s, b)].append((partition, off))
            self.first[s] = min(self.first.get(s, b), b)
            self.last[s] = max(self.last.get(s, b), b)

    def advance(self, partition: int, ms: int) -> None:
        self.watermarks[partition] = max(self.watermarks.get(partition, ms), ms)

    def close(self, force: bool = False) -> list[tuple[int, int, int]]:
        """Expected (bucket, series, count) of the summaries a close emits, in order."""
        open_buckets = [b for (_, b) in self.open_offsets]
        if force:
            if not open_buckets:
                return []
            upto = max(open_buckets)
        elif not self.watermarks:
            return []
        else:
            upto = (min(self.watermarks.values()) - self.lateness_ms) // W - 1
        if self.closed_through is not None and upto <= self.closed_through:
            return []
        start = (
            self.closed_through + 1
            if self.closed_through is not None
            else min(open_buckets, default=upto)
        )
        out = []
        for b in range(start, upto + 1):
            for s in self.order:
                has = (s, b) in self.open_offsets
                quiet_ok = (
                    s in self.first and self.first[s] <= b and b - self.last[s] <= self.ttl_buckets
                )
                if has or quiet_ok:
                    out.append((b, s, len(self.cells.get((s, b), []))))
                    self.open_offsets.pop((s, b), None)
        self.closed_through = upto
        return out

    def committable(self) -> dict[int, int]:
        out = dict(self.next_offset)
        for held in self.open_offsets.values():
            for p, off in held:
                out[p] = min(out[p], off)
        return out


def series_index(summary: BucketSummary) -> int:
    return SERIES.index(summary.series)


def check_summaries(
    got: list[BucketSummary], expected: list[tuple[int, int, int]], ref: Reference
) -> None:
    assert [(s.start_ms // W, series_index(s), s.count) for s in got] == expected
    for s in got:
        i, b = series_index(s), s.start_ms // W
        values = ref.cells.get((i, b), [])
        assert s.width_s == W / 1000
        assert s.labels["route"] == SERIES[i].split("|")[4]
        assert s.errors_5xx == sum(1 for _, _, c, _ in values if c >= 500)
        assert s.errors_4xx == sum(1 for _, _, c, _ in values if 400 <= c < 500)
        if not values:
            assert s.latency == {} and s.sample_event_ids == []
            continue
        durations = np.array([d for _, _, _, d in values])
        sketch = s.sketch()
        assert sketch.count == len(values)
        # Sums are kept in whole microseconds (split-independent): within 0.5 us per event.
        assert sketch.sum == pytest.approx(durations.sum(), abs=0.0005 * len(durations) + 1e-9)
        assert sketch.max == durations.max()
        for q in (0.0, 0.5, 0.9, 0.99, 1.0):
            truth = float(np.quantile(durations, q, method="lower"))
            # within alpha relatively; values under 1 µs share the zero bin
            assert abs(sketch.quantile(q) - truth) <= sketch.alpha * truth + 1e-3


# -- strategies ---------------------------------------------------------------------------

_status = st.sampled_from([200, 201, 204, 301, 400, 404, 429, 500, 502, 503])
_duration = st.one_of(
    st.floats(0.0, 60_000.0, allow_nan=False),
    st.sampled_from([0.0, 1e-4, 1e-3, 0.5, 1.0, 100.0]),
)


@st.composite
def events(draw: st.DrawFn, n_series: int, span_buckets: int) -> list[Event]:
    return draw(
        st.lists(
            st.tuples(
                st.integers(0, n_series - 1),
                st.integers(T0, T0 + span_buckets * W - 1),
                _status,
                _duration,
            ),
            max_size=120,
        )
    )


@st.composite
def scenario(draw: st.DrawFn) -> tuple[BucketFolder, Reference, list[tuple[object, ...]]]:
    lateness_s = draw(st.sampled_from([0, 5, 15]))
    ttl_s = draw(st.sampled_from([30, 3600]))
    f = BucketFolder(bucket_s=W / 1000, allowed_lateness_s=lateness_s, series_ttl_s=ttl_s)
    ref = Reference(lateness_ms=lateness_s * 1000, ttl_buckets=ttl_s * 1000 // W)
    evs = draw(events(draw(st.integers(1, len(SERIES))), draw(st.integers(1, 20))))
    partitions = draw(st.sampled_from([[0], [0, 1]]))
    # Cut the events into fold calls, with closes and idle advances in between.
    cuts = sorted(draw(st.lists(st.integers(0, len(evs)), max_size=8)))
    steps: list[tuple[object, ...]] = []
    offsets = dict.fromkeys(partitions, 0)
    for lo, hi in zip([0, *cuts], [*cuts, len(evs)], strict=True):
        p = draw(st.sampled_from(partitions))
        chunk = evs[lo:hi]
        gaps = draw(st.lists(st.integers(1, 3), min_size=len(chunk), max_size=len(chunk)))
        offs = list(np.cumsum([offsets[p], *gaps])[:-1]) if chunk else []
        nxt = (offs[-1] + 1 if chunk else offsets[p]) + draw(st.integers(0, 2))
        offsets[p] = nxt
        steps.append(("fold", p, chunk, [int(o) for o in offs], int(nxt)))
        action = draw(st.sampled_from(["none", "close", "close", "advance"]))
        if action == "close":
            steps.append(("close",))
        elif action == "advance":
            steps.append(("advance", p, T0 + draw(st.integers(0, 40)) * W))
            steps.append(("close",))
    return f, ref, steps


def run(
    f: BucketFolder, ref: Reference, steps: list[tuple[object, ...]]
) -> tuple[list[BucketSummary], int]:
    emitted: list[BucketSummary] = []
    folded = 0
    for step in steps:
        if step[0] == "fold":
            _, p, chunk, offs, nxt = step
            assert isinstance(p, int) and isinstance(chunk, list) and isinstance(offs, list)
            assert isinstance(nxt, int)
            fold(f, p, chunk, offs, nxt)
            ref.fold(p, chunk, offs, nxt)
            folded += len(chunk)
        elif step[0] == "advance":
            _, p, ms = step
            assert isinstance(p, int) and isinstance(ms, int)
            f.advance_watermark(p, ms)
            ref.advance(p, ms)
        else:
            got = f.close_ready()
            check_summaries(got, ref.close(), ref)
            emitted += got
        assert f.committable() == ref.committable()
        assert f.open_buckets == len(ref.open_offsets)
    return emitted, folded


# -- properties ----------------------------------------------------------------------------


@FAST
@given(scenario())
def test_folding_matches_the_reference(
    case: tuple[BucketFolder, Reference, list[tuple[object, ...]]],
) -> None:
    f, ref, steps = case
    emitted, folded = run(f, ref, steps)
    got = f.close_ready(force=True)
    check_summaries(got, ref.close(force=True), ref)
    emitted += got
    assert f.open_buckets == 0
    assert f.committable() == ref.next_offset  # all closed: everything may be committed
    # Nothing lost: every event is in exactly one summary or counted late.
    assert sum(s.count for s in emitted) + f.late_total == folded
    assert f.late_total == sum(ref.late.values())
    keys = [(s.series, s.start_ms) for s in emitted]
    assert len(keys) == len(set(keys))
    starts = [s.start_ms for s in emitted]
    assert starts == sorted(starts)


@FAST
@given(scenario())
def test_late_events_reach_the_next_summary_of_their_series(
    case: tuple[BucketFolder, Reference, list[tuple[object, ...]]],
) -> None:
    f, ref, steps = case
    emitted, _ = run(f, ref, steps)
    # One more event per series, far ahead, then everything closes: each series gets a
    # summary, which carries whatever late events it still owes.
    far = T0 + 1_000 * W
    flush = [(i, far, 200, 1.0) for i in range(len(SERIES))]
    offs = list(range(10_000, 10_000 + len(flush)))
    fold(f, 0, flush, offs)
    ref.fold(0, flush, offs, offs[-1] + 1)
    emitted += f.close_ready(force=True)
    assert sum(s.late for s in emitted) == f.late_total
    sent = [e[0] for step in steps if step[0] == "fold" for e in step[2]]  # type: ignore[attr-defined]
    for i in range(len(SERIES)):
        mine = [s for s in emitted if s.series == SERIES[i]]
        assert sum(s.count + s.late for s in mine) == sent.count(i) + 1


@st.composite
def batch_and_splits(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    evs = draw(events(len(SERIES), 12))
    cuts = sorted(draw(st.lists(st.integers(0, len(evs)), max_size=10)))
    return evs, cuts


@FAST
@given(batch_and_splits(), st.sampled_from([0, 10]))
def test_results_do_not_depend_on_how_a_batch_is_split(
    case: tuple[list[Event], list[int]], lateness_s: int
) -> None:
    evs, cuts = case
    whole = BucketFolder(bucket_s=W / 1000, allowed_lateness_s=lateness_s)
    fold(whole, 0, evs, list(range(len(evs))))
    split = BucketFolder(bucket_s=W / 1000, allowed_lateness_s=lateness_s)
    for lo, hi in zip([0, *cuts], [*cuts, len(evs)], strict=True):
        fold(split, 0, evs[lo:hi], list(range(lo, hi)), next_offset=hi)
    assert split.committable() == whole.committable()
    a, b = whole.close_ready(), split.close_ready()
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
    assert split.committable() == whole.committable()
    a, b = whole.close_ready(force=True), split.close_ready(force=True)
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
    assert whole.late_total == split.late_total == 0


# -- examples --------------------------------------------------------------------------------


def test_a_quiet_series_gets_empty_summaries_within_its_ttl_only() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=0, series_ttl_s=30)
    fold(f, 0, [(0, T0 + 1_000, 200, 5.0), (1, T0 + 2_000, 200, 5.0)], [0, 1])
    fold(f, 0, [(1, T0 + 9 * W, 200, 5.0)], [2])  # series 1 stays busy, series 0 goes quiet
    out = f.close_ready()
    quiet = [(s.start_ms - T0) // W for s in out if s.series == SERIES[0]]
    busy = [(s.start_ms - T0) // W for s in out if s.series == SERIES[1]]
    assert quiet == [0, 1, 2, 3]  # its bucket, then 3 empty ones (ttl 30 s)
    assert busy == list(range(9))
    assert all(s.count == 0 for s in out if s.start_ms > T0)


def test_no_summary_before_a_series_first_event() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=0)
    fold(f, 0, [(0, T0, 200, 1.0), (1, T0 + 5 * W, 200, 1.0), (0, T0 + 8 * W, 200, 1.0)], [0, 1, 2])
    out = f.close_ready()
    assert min(s.start_ms for s in out if s.series == SERIES[1]) == T0 + 5 * W
    assert min(s.start_ms for s in out if s.series == SERIES[0]) == T0


def test_advance_watermark_closes_idle_buckets_and_keeps_the_ticks() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=0, series_ttl_s=3600)
    fold(f, 0, [(0, T0 + 1_000, 200, 1.0)], [5], next_offset=6)
    assert f.close_ready() == [] and f.committable() == {0: 5}
    f.advance_watermark(0, T0 + 20 * W)
    first = f.close_ready()
    assert [(s.start_ms - T0) // W for s in first] == list(range(20))
    assert f.open_buckets == 0 and f.committable() == {0: 6}
    # Still idle: the series keeps getting one (empty) summary per bucket, none skipped.
    f.advance_watermark(0, T0 + 30 * W)
    second = f.close_ready()
    assert [(s.start_ms - T0) // W for s in second] == list(range(20, 30))
    assert all(s.count == 0 for s in second)


def test_an_idle_partition_holds_the_watermark_until_forgotten() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=0)
    fold(f, 0, [(0, T0 + 1_000, 200, 1.0)], [0])
    fold(f, 1, [(1, T0 + 1_000, 200, 1.0)], [0])
    fold(f, 0, [(0, T0 + 5 * W, 200, 1.0)], [1])
    assert f.close_ready() == []  # partition 1 is still in bucket 0
    assert f.committable() == {0: 0, 1: 0}
    f.forget_partition(1)
    out = f.close_ready()
    assert {(s.series, (s.start_ms - T0) // W) for s in out if s.count} == {
        (SERIES[0], 0),
        (SERIES[1], 0),
    }
    assert f.committable() == {0: 1, 1: 1}


def test_lateness_keeps_a_bucket_open() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=15)
    fold(f, 0, [(0, T0 + 1_000, 200, 1.0), (0, T0 + 24_000, 200, 1.0)], [0, 1])
    assert f.close_ready() == []  # bucket 0 ends at 10 s; + 15 s lateness > 24 s
    fold(f, 0, [(0, T0 + 2_000, 500, 1.0)], [2])  # out of order, still on time
    fold(f, 0, [(0, T0 + 25_000, 200, 1.0)], [3])
    out = f.close_ready()
    assert [(s.start_ms - T0, s.count, s.errors_5xx) for s in out] == [(0, 2, 1)]
    fold(f, 0, [(0, T0 + 3_000, 503, 1.0)], [4])  # now it is late
    assert f.late_total == 1
    f.advance_watermark(0, T0 + 60_000)
    nxt = f.close_ready()
    assert nxt[0].start_ms == T0 + W and nxt[0].late == 1 and nxt[0].errors_5xx == 0


def test_sample_event_ids_are_kept_per_bucket() -> None:
    f = BucketFolder(bucket_s=10, allowed_lateness_s=0, samples_per_bucket=2)
    for i in range(5):
        f.fold(
            0,
            [SERIES[0]],
            np.array([T0 + i]),
            np.array([200]),
            np.array([1.0]),
            first_offset=i,
            event_id=[f"e{i}"].__getitem__,
        )
    (summary,) = f.close_ready(force=True)
    assert summary.sample_event_ids == ["e0", "e1"]


def test_bucket_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bucket_s must be positive"):
        BucketFolder(bucket_s=0, allowed_lateness_s=0)
