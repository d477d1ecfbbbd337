"""The sequence model behind the value detector's ``pattern`` residual."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.sequence import SequenceSurprise


def counts_from_scratch(seq: SequenceSurprise) -> list[dict[tuple[int, ...], list[int]]]:
    fresh = SequenceSurprise(seq.bins, seq.order, seq.history, seq.min_values, seq.alpha)
    fresh.load_state(seq.to_state())
    return fresh._counts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=0, max_size=300),
    st.integers(0, 3),
    st.integers(2, 40),
)
def test_counts_are_exactly_the_kept_transitions(
    values: list[int], order: int, history: int
) -> None:
    # Forgetting one transition at a time must leave what counting the kept symbols gives.
    seq = SequenceSurprise(bins=4, order=order, history=history, min_values=1)
    for x in values:
        seq.update(float(x))
        assert seq._counts == counts_from_scratch(seq)
    assert len(seq.symbols) <= history + order
    assert sum(sum(c) for c in seq._counts[0].values()) == len(seq.symbols)


@pytest.mark.parametrize("decimals", [None, 1], ids=["distinct", "recurring"])
def test_state_round_trip_resumes_exactly(decimals: int | None) -> None:
    # Rounded values recur exactly, so the held symbols are part of the state too.
    rng = np.random.default_rng(1)
    raw = rng.normal(size=1500) + np.arange(1500) % 7
    xs = (raw if decimals is None else np.round(raw, decimals)).tolist()
    straight = SequenceSurprise(bins=12, order=2, history=300, min_values=30)
    expected = [straight.update(x) for x in xs]
    first = SequenceSurprise(bins=12, order=2, history=300, min_values=30)
    for x in xs[:700]:
        first.update(x)
    resumed = SequenceSurprise(bins=12, order=2, history=300, min_values=30)
    resumed.load_state(orjson.loads(orjson.dumps(first.to_state())))
    assert [resumed.update(x) for x in xs[700:]] == expected[700:]


def test_symbols_are_quantiles_with_their_own_for_new_extremes() -> None:
    seq = SequenceSurprise(bins=4, order=1, history=100, min_values=10)
    assert seq.symbol(1.0) is None  # too few values yet
    for x in range(100):
        seq.learn(float(x))
    assert [seq.symbol(x) for x in (0.0, 30.0, 60.0, 99.0)] == [0, 1, 2, 3]
    assert seq.symbol(110.0) == 3 and seq.symbol(-10.0) == 0  # inside the tolerance
    assert seq.symbol(500.0) == 4 and seq.symbol(-30.0) == 5


def test_a_broken_pattern_is_surprising_and_a_kept_one_is_not() -> None:
    # A sawtooth 0..5: 0 is an ordinary value, but not right after 2, 3.
    seq = SequenceSurprise(bins=6, order=2, history=600, min_values=30)
    usual = [seq.update(float(t % 6)) for t in range(800)]  # ends on ..., 5, 0, 1
    kept = max(s for s in usual[-200:] if s is not None)
    for x in (2.0, 3.0):
        seq.update(x)
    broken = seq.update(0.0)
    assert broken is not None and broken > kept + 2.0


@pytest.mark.parametrize("seed", [2, 3])
def test_iid_noise_has_no_surprisal_far_beyond_the_alphabet(seed: int) -> None:
    # With nothing to learn, the mixture falls back to the symbol frequencies:
    # surprisals stay near ln(bins), and rare ones are rare.
    rng = np.random.default_rng(seed)
    seq = SequenceSurprise(bins=8, order=2, history=500, min_values=30)
    out = [seq.update(float(x)) for x in rng.normal(size=3000)]
    tail = np.array([s for s in out[1000:] if s is not None])
    assert abs(float(np.median(tail)) - math.log(8)) < 0.5
    assert float(np.mean(tail > math.log(8) + 2.0)) < 0.02


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="bins >= 2"):
        SequenceSurprise(bins=1, order=2, history=100, min_values=10)


def test_a_recurring_level_keeps_its_symbol_while_the_mix_drifts() -> None:
    # A square wave whose duty cycle wanders around a half: the high level's
    # rank moves across a quantile edge, but it keeps one symbol.
    seq = SequenceSurprise(bins=12, order=2, history=200, min_values=30)
    rng = np.random.default_rng(4)
    given: set[int | None] = set()
    for cycle in range(120):
        high = int(rng.integers(20, 29))  # 20..28 high rows of 48
        for row in range(48):
            x = 80.0 if row < high else 20.0
            if cycle >= 10 and x == 80.0:
                given.add(seq.symbol(x))
            seq.update(x)
    assert len(given) == 1
