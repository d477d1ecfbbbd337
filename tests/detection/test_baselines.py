"""Robust and seasonal baselines: not dragged by incidents, re-learn real shifts, round-trip."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.baseline import RobustBaseline, SeasonalBaseline

HOUR_MS = 3_600_000


def test_long_incident_does_not_drag_the_baseline() -> None:
    b = RobustBaseline(window=100, warmup=10, relearn_after=1000)
    rng = np.random.default_rng(1)
    for x in rng.normal(100, 5, 200):
        b.update(x)
    before = b.expected()
    for x in rng.normal(400, 5, 900):  # a long incident, every value judged anomalous
        b.hold(x)
    after = b.expected()
    assert before is not None and after is not None
    assert after.value == before.value and after.upper == before.upper


def test_persistent_shift_is_relearned_after_the_configured_period() -> None:
    b = RobustBaseline(window=100, warmup=10, relearn_after=50)
    for _ in range(100):
        b.update(100.0)
    for _ in range(49):
        b.hold(300.0)
    assert b.expected().value == 100.0  # type: ignore[union-attr]
    b.hold(300.0)
    assert b.expected().value == 300.0  # type: ignore[union-attr]


def test_occasional_normal_values_reset_a_short_hold() -> None:
    b = RobustBaseline(window=100, warmup=10, relearn_after=50)
    for _ in range(100):
        b.update(100.0)
    for _ in range(40):  # a flapping incident: 1 normal in 2 never looks like a shift
        b.hold(300.0)
        b.update(100.0)
    assert b.expected().value == 100.0  # type: ignore[union-attr]


def test_seasonal_profile_expects_the_daily_shape() -> None:
    b = SeasonalBaseline(RobustBaseline(window=60, warmup=10), seasonal_weight=1.0)
    for i in range(3 * 24 * 6):  # three days, one value per 10 minutes
        t = i * 600_000
        hour = (t // HOUR_MS) % 24
        b.update(1000.0 if 9 <= hour < 17 else 100.0, t)
    day4 = 3 * 24 * HOUR_MS
    assert b.expected(day4 + 10 * HOUR_MS).value == 1000.0  # type: ignore[union-attr]
    assert b.expected(day4 + 2 * HOUR_MS).value == 100.0  # type: ignore[union-attr]


@settings(max_examples=25)
@given(st.lists(st.floats(0, 1e6), min_size=0, max_size=300), st.integers(0, 40))
def test_state_round_trips_through_json(values: list[float], held: int) -> None:
    b = SeasonalBaseline(RobustBaseline(window=50, warmup=5, relearn_after=30))
    for i, x in enumerate(values):
        b.update(x, i * 1_800_000)
    for _ in range(held):
        b.hold(7.0)
    copy = SeasonalBaseline(RobustBaseline(window=50, warmup=5, relearn_after=30))
    copy.load_state(json.loads(json.dumps(b.to_state())))
    assert copy.to_state() == b.to_state()
    t = len(values) * 1_800_000
    assert copy.expected(t) == b.expected(t)
