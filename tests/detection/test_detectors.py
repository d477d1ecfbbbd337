"""Each detector through the series monitor: quiet on noise, fast on incidents, exact on restore."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.alerts import AlertKind
from apiwatch.models.buckets import BucketSummary, SeriesKind, SyntheticRun
from apiwatch.models.detection_config import (
    BaselineConfig,
    DetectionConfig,
    LatencyConfig,
    SloConfig,
    SloObjective,
)
from apiwatch.models.detectors import ErrorSurge, LatencySpike, detectors_for
from apiwatch.models.monitor import Emission, SeriesMonitor
from tests.detection.helpers import SERIES, bucket, noisy_bucket, run

WARM = 120  # buckets of normal traffic before an incident (all warm-ups are shorter)


def firings(emissions: list[Emission], kind: AlertKind | None = None) -> list[Emission]:
    return [
        e for e in emissions if e.transition == "firing" and (kind is None or e.alert.kind is kind)
    ]


def replay(
    monitor: SeriesMonitor, items: list[BucketSummary] | list[SyntheticRun]
) -> list[Emission]:
    out: list[Emission] = []
    for item in items:
        out.extend(monitor.observe(item))
    return out


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.floats(2, 200), st.floats(0.0, 0.05))
def test_stationary_noise_raises_no_alert(seed: int, rate: float, err: float) -> None:
    rng = np.random.default_rng(seed)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    emissions = replay(monitor, [noisy_bucket(rng, i, rate, err) for i in range(600)])
    assert firings(emissions) == []


@pytest.mark.parametrize("fold", [3.0, 5.0, 10.0])
def test_latency_step_is_caught_within_three_buckets(fold: float) -> None:
    rng = np.random.default_rng(3)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    assert firings(replay(monitor, [noisy_bucket(rng, i) for i in range(WARM)])) == []
    spiked = [noisy_bucket(rng, WARM + i, ms=100 * fold) for i in range(3)]
    fired = firings(replay(monitor, spiked), AlertKind.LATENCY_SPIKE)
    assert len(fired) == 1
    alert = fired[0].alert
    assert alert.observed is not None and alert.expected is not None
    assert alert.observed.value > alert.expected.upper and alert.evidence.sample_event_ids


@pytest.mark.parametrize(("rate", "fold", "within"), [(3, 5.0, 8), (5, 3.0, 7), (8, 3.0, 5)])
def test_latency_step_on_a_quiet_endpoint_is_caught(rate: float, fold: float, within: int) -> None:
    # Under 2 requests a bucket are pooled over up to 12 buckets to reach min_samples.
    rng = np.random.default_rng(3)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    assert firings(replay(monitor, [noisy_bucket(rng, i, rate, 0.0) for i in range(WARM)])) == []
    spiked = [noisy_bucket(rng, WARM + i, rate, 0.0, ms=100 * fold) for i in range(within)]
    assert len(firings(replay(monitor, spiked), AlertKind.LATENCY_SPIKE)) == 1


def test_two_slow_requests_on_a_quiet_endpoint_are_not_a_spike() -> None:
    # Two requests at 9x the median lift the p95 of ~20 pooled requests past any
    # bound; every 5 minutes, at 0.8 req/s, that is usual for this endpoint.
    rng = np.random.default_rng(11)
    items = []
    for i in range(600):
        latencies = rng.lognormal(np.log(100), 0.5, int(rng.poisson(8)))
        if i % 30 == 15:
            latencies[:2] = 900.0
        items.append(bucket(i, latencies.size, 0, latencies))
    assert firings(replay(SeriesMonitor(DetectionConfig(), SERIES), items)) == []


def test_busy_endpoint_keeps_one_recent_sketch() -> None:
    rng = np.random.default_rng(6)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    replay(monitor, [noisy_bucket(rng, i, 1) for i in range(40)])
    (quiet,) = [d for d in monitor.to_state()["detectors"] if d["kind"] == "latency_spike"]
    assert len(quiet["state"]["recent"]) > 5
    replay(monitor, [noisy_bucket(rng, 40 + i, 200) for i in range(3)])
    (busy,) = [d for d in monitor.to_state()["detectors"] if d["kind"] == "latency_spike"]
    assert len(busy["state"]["recent"]) == 1


@pytest.mark.parametrize(
    ("rate", "added", "within"), [(10, 0.10, 12), (50, 0.05, 6), (200, 0.05, 3)]
)
def test_error_surge_is_caught_within_the_stated_buckets(
    rate: float, added: float, within: int
) -> None:
    rng = np.random.default_rng(4)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    replay(monitor, [noisy_bucket(rng, i, rate) for i in range(WARM)])
    surge = [noisy_bucket(rng, WARM + i, rate, 0.01 + added) for i in range(within)]
    assert len(firings(replay(monitor, surge), AlertKind.ERROR_SURGE)) == 1


def test_a_few_errors_on_a_quiet_endpoint_are_not_a_surge() -> None:
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    quiet = [bucket(i, 3, 2 if i % 40 == 0 else 0) for i in range(400)]
    assert firings(replay(monitor, quiet)) == []


def test_silence_is_a_traffic_incident_and_it_resolves() -> None:
    rng = np.random.default_rng(5)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    replay(monitor, [noisy_bucket(rng, i, 30) for i in range(WARM)])
    out = replay(monitor, [bucket(WARM + i, 0) for i in range(6)])
    assert len(firings(out, AlertKind.TRAFFIC_ANOMALY)) == 1
    back = replay(monitor, [noisy_bucket(rng, WARM + 6 + i, 30) for i in range(6)])
    assert [e.transition for e in back] == ["resolved"]


def test_monitor_restored_mid_stream_emits_exactly_the_same() -> None:
    rng = np.random.default_rng(6)
    items = [noisy_bucket(rng, i, 40) for i in range(200)]
    items += [noisy_bucket(rng, 200 + i, 40, 0.3, 600) for i in range(10)]
    items += [noisy_bucket(rng, 210 + i, 40) for i in range(40)]
    cfg = DetectionConfig()
    straight = SeriesMonitor(cfg, SERIES)
    expected = replay(straight, items)
    assert firings(expected)
    for cut in (150, 205):
        first = SeriesMonitor(cfg, SERIES)
        head = replay(first, items[:cut])
        state = json.loads(json.dumps(first.to_state()))
        restored = SeriesMonitor.from_state(cfg, state)
        assert restored.to_state() == first.to_state()
        tail = replay(restored, items[cut:])
        assert [(e.event_id, e.alert) for e in head + tail] == [
            (e.event_id, e.alert) for e in expected
        ]


def test_synthetic_failure_needs_two_locations_or_three_in_a_row() -> None:
    monitor = SeriesMonitor(DetectionConfig(), "synthetic|production|c")
    healthy = [run(i, loc, True) for i in range(20) for loc in ("fra", "iad", "syd")]
    assert firings(replay(monitor, healthy)) == []
    one_blip = [run(20, "fra", False), run(20, "iad", True), run(20, "syd", True)]
    assert firings(replay(monitor, one_blip)) == []
    outage = [run(21, "fra", False), run(21, "iad", False)]
    fired = firings(replay(monitor, outage), AlertKind.SYNTHETIC_FAILURE)
    assert len(fired) == 1
    details = fired[0].alert.evidence.details
    assert details["failures"][0]["failed_assertions"][0]["actual"] == 503
    assert details["endpoints"] == ["production|shop|GET|/cart"]


def test_single_location_check_fires_on_three_failures_in_a_row() -> None:
    monitor = SeriesMonitor(DetectionConfig(), "synthetic|production|c")
    replay(monitor, [run(i, "fra", True) for i in range(10)])
    out = [monitor.observe(run(10 + i, "fra", False)) for i in range(3)]
    assert [len(firings(o)) for o in out] == [0, 0, 1]


def test_synthetic_step_latency_against_its_own_location() -> None:
    monitor = SeriesMonitor(DetectionConfig(), "synthetic|production|c")
    normal = [
        run(i, loc, True, ms) for i in range(30) for loc, ms in (("fra", 50.0), ("syd", 300.0))
    ]
    assert firings(replay(monitor, normal)) == []
    assert (
        firings(replay(monitor, [run(30, "fra", True, 250.0)])) == []
    )  # slow for fra, but one run
    fired = firings(replay(monitor, [run(31, "fra", True, 260.0)]), AlertKind.SYNTHETIC_LATENCY)
    assert len(fired) == 1 and fired[0].alert.evidence.details["location"] == "fra"


def test_slo_burn_is_only_watched_where_an_objective_matches() -> None:
    slo = SloConfig(objectives=[SloObjective(name="items", route="/items/*", availability=0.999)])
    cfg = DetectionConfig(slo=slo)
    kinds = [d.kind for d in detectors_for(SeriesKind.RUM, cfg, {"route": "/items/{id}"})]
    assert AlertKind.SLO_BURN in kinds
    assert AlertKind.SLO_BURN not in [
        d.kind for d in detectors_for(SeriesKind.RUM, cfg, {"route": "/x"})
    ]
    monitor = SeriesMonitor(cfg, SERIES)
    rng = np.random.default_rng(7)
    replay(monitor, [noisy_bucket(rng, i, 50, 0.0) for i in range(60)])
    out = replay(monitor, [noisy_bucket(rng, 60 + i, 50, 0.2) for i in range(3)])
    assert len(firings(out, AlertKind.SLO_BURN)) == 1


def test_a_lasting_latency_level_is_adopted_with_its_requests() -> None:
    cfg = DetectionConfig(latency=LatencyConfig(baseline=BaselineConfig(relearn_after=60)))
    rng = np.random.default_rng(12)
    monitor = SeriesMonitor(cfg, SERIES)
    replay(monitor, [noisy_bucket(rng, i) for i in range(WARM)])
    (detector,) = [d for d in monitor.detectors if isinstance(d, LatencySpike)]
    before = detector.reference.quantile(0.95)
    shifted = replay(monitor, [noisy_bucket(rng, WARM + i, ms=400) for i in range(200)])
    transitions = [e.transition for e in shifted if e.alert.kind is AlertKind.LATENCY_SPIKE]
    assert transitions[0] == "firing" and transitions[-1] == "resolved"
    assert transitions.count("firing") == 1
    after = detector.reference.quantile(0.95)
    assert before is not None and after is not None and 3.5 < after / before < 4.5


def test_modest_surge_on_a_quiet_endpoint_is_caught_and_not_learned() -> None:
    # 1 req/s, 1 % -> 6 %: the 1-minute window never has the evidence; the 5-minute one does.
    rng = np.random.default_rng(4)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    replay(monitor, [noisy_bucket(rng, i, 10, 0.01) for i in range(360)])
    (detector,) = [d for d in monitor.detectors if isinstance(d, ErrorSurge)]
    usual, _ = detector.baseline()
    surge = [noisy_bucket(rng, 360 + i, 10, 0.06) for i in range(48)]
    out = replay(monitor, surge)
    assert len(firings(out, AlertKind.ERROR_SURGE)) == 1
    after = replay(monitor, [noisy_bucket(rng, 408 + i, 10, 0.01) for i in range(40)])
    assert [e.transition for e in after if e.alert.kind is AlertKind.ERROR_SURGE] == ["resolved"]
    # The buckets judged normal while the surge built up were taken back: once they are
    # out of the tested windows, they are not in the baseline either.
    assert abs(detector.baseline()[0] - usual) < 0.001
