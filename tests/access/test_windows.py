"""Window bookkeeping, checked against brute force with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.fold import AccessFolder
from apiwatch.models.access.recent import RecentSet, WindowSeries
from apiwatch.models.access.records import ClientWindow
from apiwatch.models.access.state import ClientState, Col
from apiwatch.models.events import RumEvent

from .helpers import rum

adds = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 1_000)), max_size=60)


@given(adds, st.integers(1, 8), st.integers(0, 1_000))
def test_recent_set_counts_distinct_values_since_t_exactly_below_the_cap(
    items: list[tuple[str, int]], cap: int, since: int
) -> None:
    s = RecentSet(cap)
    last: dict[str, int] = {}
    for v, t in items:
        s.add(v, t)
        last[v] = max(last.get(v, t), t)
    assert len(s) <= cap
    if len(last) <= cap:
        assert s.count_since(since) == sum(1 for t in last.values() if t >= since)
    # Whatever was evicted, what is kept carries its true last-seen time.
    assert all(last[v] == t for v, t in s.values.items())


@given(adds, st.integers(1, 8))
def test_recent_set_evicts_the_oldest_first(items: list[tuple[str, int]], cap: int) -> None:
    s = RecentSet(cap)
    for v, t in items:
        s.add(v, t)
    state = RecentSet(cap, s.to_state())
    assert state.values == s.values


rows = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 50), st.integers(0, 50)), max_size=40)


@given(rows, st.integers(0, 31))
def test_window_series_sums_match_brute_force_in_any_arrival_order(
    items: list[tuple[int, int, int]], since_w: int
) -> None:
    w = WindowSeries(2)
    for start, a, b in items:
        w.add(start * 10_000, [a, b])
    since_ms = since_w * 10_000
    expected = [
        sum(a for s, a, _ in items if s * 10_000 >= since_ms),
        sum(b for s, _, b in items if s * 10_000 >= since_ms),
    ]
    assert w.sum_since(since_ms) == expected
    assert w.windows_since(since_ms) == len({s for s, _, _ in items if s * 10_000 >= since_ms})
    assert WindowSeries(2, w.to_state()).sum_since(since_ms) == expected
    w.prune(since_ms)
    assert w.sum_since(0) == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 120), st.sampled_from([200, 401, 404])), min_size=1, max_size=80
    ),
    st.lists(st.integers(1, 20), max_size=5),
)
def test_folding_is_the_same_however_the_stream_is_batched(
    events: list[tuple[int, int]], cuts: list[int]
) -> None:
    evs = [rum(t, status=s, client_ip="192.0.2.9") for t, s in sorted(events)]

    def totals(batches: list[list[RumEvent]]) -> tuple[list[int], int]:
        f = AccessFolder(AccessConfig())
        state = ClientState("production|ip|192.0.2.9", AccessConfig())
        offset = 0
        for b in batches:
            f.fold(b, range(offset, offset + len(b)))
            offset += len(b)
            held = f.committable()
            open_offsets = [w.min_offset for w in f.windows.values()]
            assert held == (min(open_offsets) if open_offsets else None)
            for rec in f.close_ready()[0]:
                state.merge(ClientWindow.model_validate(rec))
        for rec in f.close_ready(everything=True)[0]:
            state.merge(ClientWindow.model_validate(rec))
        return state.totals(0), state.counters.windows_since(0)

    batches, i = [], 0
    for c in cuts:
        batches.append(evs[i : i + c])
        i += c
    batches.append(evs[i:])
    got = totals([b for b in batches if b])
    assert got == totals([evs])
    assert got[0][Col.COUNT] == len(evs)
