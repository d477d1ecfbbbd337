"""Exact tails against scipy, the sketch's relative-error guarantee, the tail reference."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from apiwatch.models.reference import TailReference
from apiwatch.models.sketch import LogSketch
from apiwatch.models.stats import (
    beta_binomial_isf,
    beta_binomial_sf,
    poisson_cdf,
    poisson_sf,
)


@given(st.integers(1, 2000), st.floats(0.05, 5000), st.floats(0.05, 50_000), st.data())
def test_beta_binomial_tail_matches_scipy(n: int, a: float, b: float, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, n + 1))
    # The sum of the pmf: scipy's own sf is 1 - cdf, which loses the far tail.
    expected = float(stats.betabinom.pmf(np.arange(max(x, 0), n + 1), n, a, b).sum())
    assert math.isclose(beta_binomial_sf(x, n, a, b), expected, rel_tol=1e-6, abs_tol=1e-12)


@given(
    st.integers(0, 3000),
    st.floats(0.5, 500),
    st.floats(1.0, 50_000),
    st.sampled_from([0.05, 1e-3, 1e-5, 1e-9]),
)
def test_beta_binomial_isf_is_the_least_significant_count(
    n: int, a: float, b: float, alpha: float
) -> None:
    x = beta_binomial_isf(alpha, n, a, b)
    tail = np.cumsum(stats.betabinom.pmf(np.arange(n, -1, -1), n, a, b))[::-1]  # P(X >= k)
    assert 1 <= x <= n + 1
    assert x == n + 1 or tail[x] < alpha * (1 + 1e-6)
    assert tail[x - 1] >= alpha * (1 - 1e-6)


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


@settings(max_examples=40)
@given(
    st.lists(st.floats(0.01, 1e5), min_size=1, max_size=300),
    st.floats(0.01, 1e5),
    st.integers(1, 50),
)
def test_tail_reference_counts_like_the_sketch(values: list[float], x: float, memory: int) -> None:
    sketch = LogSketch()
    sketch.add_many(np.array(values))
    ref = TailReference(memory)
    ref.add(sketch)
    slow = ref.exceed(sketch, x)
    above, total = ref.tail(x)
    assert math.isclose(above, slow) and math.isclose(total, len(values))
    # Bins are coarse: requests counted as slower are slower than x, give or take 5 %.
    assert sum(v > x * 1.05 for v in values) <= slow <= sum(v > x / 1.05 for v in values)
    ref.add(LogSketch())  # one empty bucket ages everything by 1 - 1/memory
    assert math.isclose(ref.tail(x)[0], slow * (1 - 1 / memory), abs_tol=1e-3)
    restored = TailReference(memory)
    restored.load_state(json.loads(json.dumps(ref.to_state())))
    assert restored.bins == ref.bins and restored.total == ref.total


def test_tail_reference_quantile_splits_its_tail() -> None:
    rng = np.random.default_rng(8)
    ref = TailReference(360)
    for _ in range(100):
        sketch = LogSketch()
        sketch.add_many(rng.lognormal(np.log(100), 0.5, 50))
        ref.add(sketch)
    p95 = ref.quantile(0.95)
    assert p95 is not None and 0.95 * 227 < p95 < 1.1 * 227  # lognormal p95 = 100 e^(1.645 / 2)
    above, total = ref.tail(p95)
    assert 0.03 < above / total <= 0.05
    assert TailReference(10).quantile(0.95) is None
