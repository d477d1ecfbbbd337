"""Tail probabilities of anomaly scores: how rare is this score for this series?

Two small, causal statistics turn raw surprise into probabilities that mean
the same on every series, whatever its units, noise or tails:

:func:`tail_probability`
    The chance that a past residual was at least ``z``: empirical inside the
    history, and beyond its top decile an exponential tail fitted to the
    excesses over the decile (peaks over threshold), so a residual far beyond
    everything seen gets a probability far below ``1 / len(history)``.

:class:`AnomalyLikelihood`
    HTM's anomaly likelihood (Ahmad et al. 2017): the mean of the last few raw
    scores against the mean and deviation of such short means over a long
    history; the Gaussian upper tail of that difference is small when the
    series has been surprising for a while, as after a level shift or when its
    variance changes, even if no single row was extreme.

>>> hist = [float(i % 10) for i in range(200)]
>>> round(tail_probability(hist, 5.0), 2), tail_probability(hist, 30.0) < 1e-6
(0.5, True)
>>> lk = AnomalyLikelihood(short=4, long=200, min_points=20)
>>> ps = [lk.update(0.1 * (i % 5)) for i in range(300)]
>>> min(ps[100:]) > 1e-2, [round(lk.update(1.0), 4) for _ in range(3)][-1] < 1e-4
(True, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from typing import Any

import numpy as np

#: Share of the history (and least number of values) whose excesses fit the tail.
TAIL_SHARE = 0.1
MIN_TAIL = 5
#: Heaviest tail allowed (shape 1 is a tail like 1 / z).
MAX_SHAPE = 0.9
#: Least tail scale, as a share of the tail threshold (ties make the fitted scale 0).
MIN_SCALE_SHARE = 0.05


def tail_probability(history: Collection[float] | np.ndarray, z: float) -> float:
    """P(past residual >= z): empirical, with a fitted tail beyond the top decile.

    The excesses over the decile fit a generalised Pareto distribution by
    probability-weighted moments (Hosking and Wallis 1987), its shape kept in
    ``[0, MAX_SHAPE]``: an exponential tail for calm series, a power law for
    spiky ones, so a series with a few huge past spikes does not call the
    next one impossible.
    """
    n = len(history)
    arr = history if isinstance(history, np.ndarray) else np.fromiter(history, float, count=n)
    if n == 0:
        return 1.0
    k = max(MIN_TAIL, math.ceil(TAIL_SHARE * n))
    if k >= n:
        return max(float(np.count_nonzero(arr >= z)), 0.5) / n
    top = np.sort(np.partition(arr, n - k - 1)[n - k - 1 :])
    u = float(top[0])
    if z <= u:
        return float(np.count_nonzero(arr >= z)) / n
    excess = top[1:] - u
    a0 = float(excess.mean())
    a1 = float(np.dot(excess, 1.0 - (np.arange(1, k + 1) - 0.35) / k)) / k
    denominator = max(a0 - 2.0 * a1, 1e-12)
    shape = min(MAX_SHAPE, max(0.0, 2.0 - a0 / denominator) if a0 > 0 else 0.0)
    # The scale that keeps the mean excess, a0 = scale / (1 - shape), once shape is clamped.
    scale = max(a0 * (1.0 - shape), MIN_SCALE_SHARE * max(abs(u), 1.0), 1e-12)
    tail = k / n
    y = (z - u) / scale
    if shape < 1e-6:
        return tail * math.exp(-y)
    return float(tail * (1.0 + shape * y) ** (-1.0 / shape))


def gaussian_tail(x: float) -> float:
    """P(N(0, 1) >= x).

    >>> gaussian_tail(0.0), round(gaussian_tail(3.0), 5)
    (0.5, 0.00135)
    """
    return 0.5 * math.erfc(x / math.sqrt(2.0))


class AnomalyLikelihood:
    """Upper-tail probability of the recent mean raw score (HTM's anomaly likelihood).

    Parameters
    ----------
    short
        Raw scores averaged into the recent mean.
    long
        Recent means kept to estimate their usual mean and deviation.
    min_points
        Means needed before it answers anything but 1.
    """

    __slots__ = ("means", "min_points", "raw", "short")

    #: Floor of the deviation of the means, so a flat history does not make noise infinite.
    MIN_STD = 1e-3

    def __init__(self, short: int, long: int, min_points: int) -> None:
        self.short = max(1, short)
        self.min_points = min_points
        self.raw: deque[float] = deque(maxlen=self.short)
        self.means: deque[float] = deque(maxlen=max(long, min_points))

    def probability(self, raw: float) -> float:
        """The tail probability if ``raw`` came next (no state change)."""
        if len(self.means) < self.min_points:
            return 1.0
        recent = (sum(self.raw) - (self.raw[0] if len(self.raw) == self.short else 0.0) + raw) / (
            min(len(self.raw) + 1, self.short)
        )
        arr = np.fromiter(self.means, dtype=float, count=len(self.means))
        std = max(float(arr.std()), self.MIN_STD)
        return gaussian_tail((recent - float(arr.mean())) / std)

    def learn(self, raw: float) -> None:
        self.raw.append(float(raw))
        if len(self.raw) == self.short:
            self.means.append(sum(self.raw) / self.short)

    def update(self, raw: float) -> float:
        """Probability of ``raw`` next, then learn it."""
        p = self.probability(raw)
        self.learn(raw)
        return p

    def to_state(self) -> dict[str, Any]:
        return {"raw": list(self.raw), "means": list(self.means)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.raw = deque(map(float, state.get("raw", [])), maxlen=self.raw.maxlen)
        self.means = deque(map(float, state.get("means", [])), maxlen=self.means.maxlen)
