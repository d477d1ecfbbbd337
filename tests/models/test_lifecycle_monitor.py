"""Alert lifecycle (hysteresis, cooldown, pacing) and the per-series monitor around it."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.alerts import AlertKind, Transition
from apiwatch.models.buckets import BucketSummary, SyntheticRun
from apiwatch.models.detection_config import DetectionConfig, LifecycleConfig
from apiwatch.models.detectors import LatencySpike
from apiwatch.models.lifecycle import AlertLifecycle
from apiwatch.models.monitor import Emission, SeriesMonitor
from tests.detection.helpers import SERIES, T0, bucket, noisy_bucket, run

STEP_MS = 10_000
FAST = settings(max_examples=40, deadline=None)

Verdicts = list[tuple[bool | None, float]]


def drive(lc: AlertLifecycle, verdicts: Verdicts, t0: int = 0) -> list[Transition | None]:
    return [lc.step(v, t0 + i * STEP_MS, s) for i, (v, s) in enumerate(verdicts)]


def lifecycle(**cfg: Any) -> AlertLifecycle:
    base: dict[str, Any] = {"cooldown_s": 0, "update_interval_s": 0}
    base.update(cfg)
    return AlertLifecycle(LifecycleConfig(**base))


def plain(seq: str) -> Verdicts:
    """'A' anomalous, '.' normal, '?' not judgeable."""
    return [({"A": True, ".": False, "?": None}[c], 1.0) for c in seq]


# -- AlertLifecycle: examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "n", "seq", "fires_at"),
    [
        (2, 3, "A.A", 2),
        (2, 3, "A..A", None),  # the first A left the window of 3
        (2, 3, "A?.?A", 4),  # unknowns do not count towards N
        (1, 1, "..A", 2),
        (3, 4, "AA.A", 3),
        (3, 4, "AA..A", None),
    ],
)
def test_fires_after_m_of_the_last_n_judged(m: int, n: int, seq: str, fires_at: int | None) -> None:
    out = drive(lifecycle(fire_m=m, fire_n=n, resolve_after=99), plain(seq))
    assert [i for i, t in enumerate(out) if t] == ([] if fires_at is None else [fires_at])
    assert all(t in (None, "firing") for t in out)


def test_resolves_after_resolve_after_normal_buckets_in_a_row() -> None:
    out = drive(lifecycle(fire_m=1, fire_n=1, resolve_after=3), plain("A..A...?A"))
    assert out == ["firing", None, None, None, None, None, "resolved", None, "firing"]


def test_unknowns_neither_break_nor_extend_a_normal_streak() -> None:
    out = drive(lifecycle(fire_m=1, fire_n=1, resolve_after=3), plain("A.?.?."))
    assert out == ["firing", None, None, None, None, "resolved"]


def test_cooldown_blocks_a_refire() -> None:
    lc = lifecycle(fire_m=1, fire_n=1, resolve_after=1, cooldown_s=60)
    out = drive(lc, plain("A." + "A" * 8))
    # resolved at t=10 s; refire only once t - 10 s >= 60 s, i.e. at t=70 s (index 7)
    assert out == ["firing", "resolved", None, None, None, None, None, "firing", None, None]


def test_cooldown_counts_event_time_not_buckets() -> None:
    lc = lifecycle(fire_m=1, fire_n=1, resolve_after=1, cooldown_s=60)
    assert lc.step(True, 0) == "firing"
    assert lc.step(False, 10_000) == "resolved"
    assert lc.step(True, 69_999) is None
    assert lc.step(True, 70_000) == "firing"


def test_updated_is_paced_and_needs_a_worse_score() -> None:
    lc = lifecycle(fire_m=1, fire_n=1, resolve_after=5, update_interval_s=30)
    scores = [0.5, 0.6, 0.7, 0.8, 0.9, 0.8, 0.85, 0.95, 0.99]
    out = drive(lc, [(True, s) for s in scores])
    # firing at 0 s; each update at least 30 s after the previous one, and only if worse
    # than the peak so far (0.8 at 30 s, so 0.85 at 60 s counts)
    assert out == ["firing", None, None, "updated", None, None, "updated", None, None]
    assert lc.peak_score == 0.85
    assert lc.step(True, 90_000, 0.99) == "updated"
    assert lc.step(True, 200_000, 0.99) is None  # not worse than the peak


def test_no_updates_when_interval_is_zero() -> None:
    lc = lifecycle(fire_m=1, fire_n=1, update_interval_s=0)
    out = drive(lc, [(True, float(i)) for i in range(10)])
    assert out == ["firing"] + [None] * 9


def test_stale_resolve_after_three_times_resolve_after_unknowns() -> None:
    lc = lifecycle(fire_m=1, fire_n=1, resolve_after=2)
    out = drive(lc, plain("A?????"))
    assert out == ["firing", None, None, None, None, None]
    assert lc.step(None, 60_000) == "resolved"  # the 6th unknown in a row
    assert not lc.firing and lc.resolved_ms == 60_000


def test_unknowns_alone_never_fire_or_resolve() -> None:
    assert drive(lifecycle(fire_m=1, fire_n=1), plain("?" * 50)) == [None] * 50


# -- AlertLifecycle: properties --------------------------------------------------------------

_verdicts = st.lists(st.tuples(st.sampled_from([True, False, None]), st.floats(0, 1)), max_size=80)
_config = st.builds(
    lambda m, extra, r, cool, upd: LifecycleConfig(
        fire_m=m, fire_n=m + extra, resolve_after=r, cooldown_s=cool, update_interval_s=upd
    ),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(1, 4),
    st.sampled_from([0.0, 25.0, 60.0]),
    st.sampled_from([0.0, 20.0, 45.0]),
)


@FAST
@given(_config, _verdicts)
def test_lifecycle_follows_its_rules(cfg: LifecycleConfig, verdicts: Verdicts) -> None:
    lc = AlertLifecycle(cfg)
    firing = False
    window: deque[bool] = deque(maxlen=cfg.fire_n)
    resolved_at: int | None = None
    last_update = peak = 0.0
    normal = unknown = 0
    for i, (v, score) in enumerate(verdicts):
        t = i * STEP_MS
        out = lc.step(v, t, score)
        cooling = resolved_at is not None and t - resolved_at < cfg.cooldown_s * 1000
        if v is None:
            unknown += 1
            stale = firing and unknown >= 3 * cfg.resolve_after
            assert out == ("resolved" if stale else None)
        else:
            unknown = 0
            window.append(v)
            if not firing:
                should = sum(window) >= cfg.fire_m and not cooling
                assert out == ("firing" if should else None)
            elif v:
                normal = 0
                due = cfg.update_interval_s > 0 and t - last_update >= cfg.update_interval_s * 1000
                assert out == ("updated" if due and score > peak else None)
            else:
                normal += 1
                assert out == ("resolved" if normal >= cfg.resolve_after else None)
        if out == "firing":
            firing, last_update, peak, normal = True, t, score, 0
        elif out == "updated":
            last_update, peak = t, score
        elif out == "resolved":
            firing, resolved_at, normal, unknown = False, t, 0, 0
            window.clear()
        assert lc.firing is firing


@FAST
@given(_config, _verdicts, st.data())
def test_lifecycle_state_round_trips_mid_stream(
    cfg: LifecycleConfig, verdicts: Verdicts, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(verdicts)))
    straight = drive(AlertLifecycle(cfg), verdicts)
    first = AlertLifecycle(cfg)
    head = drive(first, verdicts[:cut])
    again = AlertLifecycle(cfg)
    again.load_state(orjson.loads(orjson.dumps(first.to_state())))
    assert again.to_state() == first.to_state()
    tail = drive(again, verdicts[cut:], t0=cut * STEP_MS)
    assert head + tail == straight


@FAST
@given(_config, _verdicts)
def test_transitions_alternate(cfg: LifecycleConfig, verdicts: Verdicts) -> None:
    out = [t for t in drive(AlertLifecycle(cfg), verdicts) if t]
    firing = False
    for t in out:
        assert (t == "firing") is not firing
        firing = t != "resolved"


# -- SeriesMonitor -----------------------------------------------------------------------------


def replay(m: SeriesMonitor, items: list[BucketSummary] | list[SyntheticRun]) -> list[Emission]:
    out: list[Emission] = []
    for item in items:
        out += m.observe(item)
    return out


def emitted(out: list[Emission]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.event_id, e.transition, e.alert.model_dump(mode="json")) for e in out]


def traffic(seed: int, n: int, incidents: list[tuple[int, int, str]]) -> list[BucketSummary]:
    """n noisy buckets of 40 requests, with (start, length, kind) incidents."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = next((k for s, ln, k in incidents if s <= i < s + ln), None)
        if kind == "latency":
            out.append(noisy_bucket(rng, i, 40, ms=800))
        elif kind == "errors":
            out.append(noisy_bucket(rng, i, 40, err=0.4))
        elif kind == "silence":
            out.append(bucket(i, 0))
        else:
            out.append(noisy_bucket(rng, i, 40))
    return out


def test_duplicate_and_older_buckets_are_ignored() -> None:
    m = SeriesMonitor(DetectionConfig(), SERIES)
    items = traffic(1, 40, [])
    replay(m, items)
    state = orjson.dumps(m.to_state())
    assert m.observe(items[-1]) == []
    assert m.observe(items[10]) == []
    assert m.duplicates == 2 and m.buckets_seen == 40
    assert orjson.dumps(m.to_state()) == state


def test_a_replayed_synthetic_run_is_ignored() -> None:
    m = SeriesMonitor(DetectionConfig(), "synthetic|production|c")
    first = [run(i, loc, ok=False) for i in range(3) for loc in ("eu", "us")]
    out = replay(m, first)
    assert [e.transition for e in out] == ["firing"]
    assert replay(m, first) == [] and m.duplicates == len(first)


_incident = st.tuples(
    st.integers(70, 130), st.integers(3, 25), st.sampled_from(["latency", "errors", "silence"])
)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**16), st.lists(_incident, min_size=1, max_size=2), st.data())
def test_monitor_state_round_trips_mid_stream(
    seed: int, incidents: list[tuple[int, int, str]], data: st.DataObject
) -> None:
    cfg = DetectionConfig()
    items = traffic(seed, 170, incidents)
    straight = replay(SeriesMonitor(cfg, SERIES), items)
    cut = data.draw(st.integers(60, 170))
    first = SeriesMonitor(cfg, SERIES)
    head = replay(first, items[:cut])
    restored = SeriesMonitor.from_state(cfg, orjson.loads(orjson.dumps(first.to_state())))
    assert restored.to_state() == first.to_state()
    tail = replay(restored, items[cut:])
    assert emitted(head + tail) == emitted(straight)
    # A restored monitor also drops what the old one had already seen.
    assert replay(restored, items[:cut]) == []


def test_emission_ids_are_deterministic_and_unique() -> None:
    items = traffic(3, 200, [(80, 10, "latency"), (120, 10, "errors"), (160, 8, "silence")])
    a = replay(SeriesMonitor(DetectionConfig(), SERIES), items)
    b = replay(SeriesMonitor(DetectionConfig(), SERIES), items)
    assert {e.alert.kind for e in a} >= {
        AlertKind.LATENCY_SPIKE,
        AlertKind.ERROR_SURGE,
        AlertKind.TRAFFIC_ANOMALY,
    }
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert len({e.event_id for e in a}) == len(a)
    events = [e.event("/apiwatch/test") for e in a]
    assert [ev.id for ev in events] == [e.event_id for e in a]
    # one fingerprint per (kind, series): subject stays for the incident
    for kind in {e.alert.kind for e in a}:
        assert len({ev.subject for ev in events if ev.data.kind is kind}) == 1


def latency_detector(m: SeriesMonitor) -> LatencySpike:
    (d,) = [d for d in m.detectors if isinstance(d, LatencySpike)]
    return d


def test_a_long_incident_does_not_move_the_latency_baseline() -> None:
    m = SeriesMonitor(DetectionConfig(), SERIES)
    rng = np.random.default_rng(11)
    warm = 80
    replay(m, [noisy_bucket(rng, i, 40) for i in range(warm)])
    d = latency_detector(m)
    at = T0 + (warm + 200) * STEP_MS
    before = d.baseline.expected(at)
    before_state = orjson.dumps(d.baseline.to_state()["r"]["values"])
    assert before is not None
    incident = [noisy_bucket(rng, warm + i, 40, ms=1_000) for i in range(100)]
    out = replay(m, incident)
    assert [(e.alert.kind, e.transition) for e in out if e.transition == "firing"].count(
        (AlertKind.LATENCY_SPIKE, "firing")
    ) == 1
    assert "latency_spike" in m.firing
    after = d.baseline.expected(at)
    assert after == before
    assert orjson.dumps(d.baseline.to_state()["r"]["values"]) == before_state
    # and once latency is back to normal, the alert resolves (once)
    back = replay(m, [noisy_bucket(rng, warm + 100 + i, 40) for i in range(10)])
    assert [e.transition for e in back if e.alert.kind is AlertKind.LATENCY_SPIKE] == ["resolved"]
