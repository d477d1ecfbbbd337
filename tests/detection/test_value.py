"""The univariate value detector behind ``apiwatch backtest SERIES.csv``."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from apiwatch.models.backtest import backtest_series
from apiwatch.models.detection_config import DetectionConfig, ValueSeriesConfig
from apiwatch.models.detectors.value import Point, ValueDetector
from apiwatch.models.likelihood import AnomalyLikelihood, tail_probability

FIVE_MIN_MS = 300_000
#: Short spans keep the tests fast: a 1-day window at 5 min is 288 rows.
CFG = ValueSeriesConfig(window_s=86400, history_s=2 * 86400, max_points=600)


def run(detector: ValueDetector, values: np.ndarray, start: int = 0) -> list[float]:
    scores = []
    for i, v in enumerate(values.tolist(), start):
        p = Point(i * FIVE_MIN_MS, float(v))
        verdict = detector.judge(p)
        detector.learn(p, verdict)
        scores.append(verdict.score)
    return scores


def noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    daily = 10.0 * np.sin(np.arange(n) * 2 * np.pi / 288)
    return 100.0 + daily + rng.normal(0.0, 2.0, n)


def alerts(values: np.ndarray, interval_ms: int = FIVE_MIN_MS) -> np.ndarray:
    times = [i * interval_ms for i in range(values.size)]
    return backtest_series(times, values.tolist(), DetectionConfig(series=CFG)).alerts


def test_scores_are_causal() -> None:
    values = noise(900)
    values[700] += 40.0
    full = run(ValueDetector(CFG, 300.0), values)
    cut = run(ValueDetector(CFG, 300.0), values[:650])
    assert full[:650] == cut


def test_state_round_trip_resumes_exactly() -> None:
    values = noise(1000, seed=1)
    values[800:] += 25.0
    straight = run(ValueDetector(CFG, 300.0), values)
    first = ValueDetector(CFG, 300.0)
    run(first, values[:500])
    state = orjson.loads(orjson.dumps(first.to_state()))
    resumed = ValueDetector(CFG, 300.0)
    resumed.load_state(state)
    assert run(resumed, values[500:], start=500) == straight[500:]


def state_size(state: object) -> int:
    if isinstance(state, dict):
        return sum(state_size(v) for v in state.values())
    if isinstance(state, list):
        return (
            sum(state_size(v) for v in state)
            if state and isinstance(state[0], list)
            else len(state)
        )
    return 1


def test_state_is_bounded() -> None:
    detector = ValueDetector(CFG, 300.0)
    run(detector, noise(2500, seed=2))
    size = state_size(detector.to_state())
    run(detector, noise(2500, seed=3), start=2500)
    assert state_size(detector.to_state()) == size < 10 * CFG.max_points


def test_spike_is_caught_at_once() -> None:
    values = noise(900, seed=3)
    values[800] += 30.0  # 15 sigma
    fired = np.flatnonzero(alerts(values)[700:]) + 700
    assert fired.tolist() == [800]


def test_step_is_caught_within_a_few_rows_and_paged_once() -> None:
    values = noise(1000, seed=4)
    values[800:] *= 1.5
    fired = np.flatnonzero(alerts(values)[700:]) + 700
    step = fired[fired >= 800]
    assert step.size == 1 and step[0] <= 803
    # Before it, the stationary budget (see below): at most one page in the day.
    assert (fired < 800).sum() <= 1


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_stationary_noise_stays_quiet(seed: int) -> None:
    # Three days after the first day's warm-up: at most one page, at p = 1e-4 per row.
    assert alerts(noise(288 * 4, seed=seed))[288:].sum() <= 1


def test_works_at_any_interval() -> None:
    rng = np.random.default_rng(8)
    values = 50.0 + rng.normal(0.0, 1.0, 3000)  # one value a minute
    values[2500] += 12.0
    fired = np.flatnonzero(alerts(values, interval_ms=60_000)[1500:]) + 1500
    assert 2500 in fired.tolist() and fired.size <= 2


def test_tail_probability_is_calibrated_inside_and_heavier_beyond() -> None:
    rng = np.random.default_rng(9)
    z = np.abs(rng.normal(size=2000))
    assert tail_probability(z, 1.0) == pytest.approx(0.317, abs=0.03)
    beyond = tail_probability(z, 6.0)
    assert 1e-9 < beyond < 1e-3  # far past every value: rare, but never "impossible"


def test_likelihood_flags_a_sustained_rise_not_one_blip() -> None:
    lk = AnomalyLikelihood(short=12, long=500, min_points=50)
    rng = np.random.default_rng(10)
    for x in rng.uniform(0.0, 1.0, 600):
        lk.update(float(x))
    assert lk.update(1.0) > 1e-2
    assert min(lk.update(0.95) for _ in range(12)) < 1e-4


def test_an_ordinary_value_out_of_its_place_is_caught_by_the_pattern_residual() -> None:
    # A noisy sawtooth 0..5 that drops back after 3 once: the value, the size of
    # the drop and the level are all seen every cycle, only the order is new.
    rng = np.random.default_rng(11)
    values = (np.arange(1200) % 6).astype(float)
    values[1102:] = (np.arange(98) % 6).astype(float)  # 0, 1, 2, 3, then 0 where 4 was due
    values += rng.normal(0.0, 0.05, values.size)
    cfg = CFG.model_copy(update={"season_s": 0.0})
    with_pattern = run(ValueDetector(cfg, 300.0), values)
    without = run(ValueDetector(cfg.model_copy(update={"pattern_bins": 0}), 300.0), values)
    # Scores are reported on the row after their peak (see the test below).
    assert with_pattern[1103] >= cfg.alert_score
    assert with_pattern[1103] > max(with_pattern[600:1100]) + 0.3  # far above the kept rhythm
    assert max(without[1102:1104]) < cfg.alert_score / 2


def test_an_incident_is_flagged_at_once_and_scored_once_at_its_peak() -> None:
    # A step: the likelihood makes the score climb for a few rows. The alert
    # fires on the first row; the score is reported once, the row after the peak.
    values = noise(1000, seed=4)
    values[800:] *= 1.5
    detector = ValueDetector(CFG, 300.0)
    scores = run(detector, values)
    high = np.flatnonzero(np.asarray(scores[800:]) >= CFG.alert_score) + 800
    assert high.size == 1 and 801 <= high[0] <= 815
    fired = np.flatnonzero(alerts(values)[800:]) + 800
    assert fired.tolist() == [800]


def test_a_daily_peak_stops_paging_once_the_season_is_known() -> None:
    # An hour-long peak at the same time every day is the series' rhythm, not an
    # incident: once the seasonal residual has a whole day of its own history
    # (day 4 at the default 3 seasons and 2-day window), it no longer pages.
    rng = np.random.default_rng(12)
    days = 7
    values = 10.0 + rng.normal(0.0, 0.5, 288 * days)
    for d in range(days):
        values[d * 288 + 100 : d * 288 + 112] += 40.0
    times = [i * FIVE_MIN_MS for i in range(values.size)]
    fired = backtest_series(times, values.tolist()).alerts
    assert fired[4 * 288 :].sum() == 0


def test_a_one_symbol_sequence_model_is_refused_in_config() -> None:
    with pytest.raises(ValueError, match="pattern_bins must be 0"):
        ValueSeriesConfig(pattern_bins=1)
