"""Exact tails against scipy, and the sketch's relative-error guarantee."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from apiwatch.models.sketch import LogSketch
from apiwatch.models.stats import binomial_sf, poisson_cdf, poisson_sf


@given(st.integers(1, 2000), st.floats(1e-4, 0.999), st.data())
def test_binomial_tail_matches_scipy(n: int, p: float, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, n + 1))
    assert math.isclose(
        binomial_sf(x, n, p), stats.binom.sf(x - 1, n, p), rel_tol=1e-6, abs_tol=1e-12
    )


@given(st.floats(0.01, 500), st.integers(0, 1000))
def test_poisson_tails_match_scipy(lam: float, x: int) -> None:
    assert math.isclose(
        poisson_sf(x, lam), stats.poisson.sf(x - 1, lam), rel_tol=1e-6, abs_tol=1e-12
    )
    assert math.isclose(poisson_cdf(x, lam), stats.poisson.cdf(x, lam), rel_tol=1e-6, abs_tol=1e-12)


@settings(max_examples=60)
@given(
    st.lists(st.floats(0.01, 1e7, allow_nan=False), min_size=1, max_size=400),
    st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    st.sampled_from([0.01, 0.02, 0.05]),
)
def test_sketch_quantile_within_relative_error(values: list[float], q: float, alpha: float) -> None:
    sketch = LogSketch(alpha=alpha)
    arr = np.asarray(values)
    sketch.add_many(arr)
    # The sketch answers the value of rank floor(q * (n - 1)) (lower quantile).
    truth = float(np.sort(arr)[math.floor(q * (len(arr) - 1))])
    assert abs(sketch.quantile(q) - truth) <= alpha * truth * (1 + 1e-9)


@settings(max_examples=30)
@given(st.lists(st.floats(0.01, 1e5), min_size=1, max_size=200), st.integers(1, 199))
def test_merged_sketches_equal_one_sketch(values: list[float], cut: int) -> None:
    whole, left, right = LogSketch(), LogSketch(), LogSketch()
    whole.add_many(np.asarray(values))
    left.add_many(np.asarray(values[:cut]))
    right.add_many(np.asarray(values[cut:]))
    left.merge(right)
    assert left.bins == whole.bins and left.count == whole.count
