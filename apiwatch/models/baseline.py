"""Robust rolling baselines: what a bucket statistic normally looks like.

:class:`RobustBaseline` keeps the last ``window`` accepted values of one
statistic (a p95, an error rate, a request count) and answers with their
median and bounds from the median absolute deviation (MAD), which a few wild
values cannot drag the way a mean and standard deviation are dragged. It
learns only what its owner feeds it: detectors feed it buckets judged normal,
so an incident never becomes the new normal.

>>> b = RobustBaseline(window=50, warmup=5, mad_k=6.0, min_ratio=1.5)
>>> for x in [100, 104, 98, 101, 99, 102, 97]:
...     b.update(x)
>>> e = b.expected()
>>> round(e.value), e.upper > 120, b.ready
(100, True, True)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from apiwatch.models.alerts import Expected

#: 1.4826 x MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826


class RobustBaseline:
    """Median and MAD bounds over a rolling window of accepted values.

    Parameters
    ----------
    window
        Number of recent accepted values kept.
    warmup
        Values needed before :meth:`expected` answers.
    mad_k
        Width of the band in robust standard deviations.
    min_ratio
        The upper bound is at least ``min_ratio`` times the median, so a very
        steady series does not alert on trivial wiggles.
    min_sigma_ratio
        Floor of the robust deviation as a fraction of the median (MAD is 0
        when over half the values are equal).
    """

    __slots__ = ("mad_k", "min_ratio", "min_sigma_ratio", "values", "warmup", "window")

    def __init__(
        self,
        window: int = 360,
        warmup: int = 30,
        mad_k: float = 6.0,
        min_ratio: float = 1.5,
        min_sigma_ratio: float = 0.05,
    ) -> None:
        if warmup > window:
            raise ValueError(f"warmup ({warmup}) cannot exceed window ({window})")
        self.window = window
        self.warmup = warmup
        self.mad_k = mad_k
        self.min_ratio = min_ratio
        self.min_sigma_ratio = min_sigma_ratio
        self.values: deque[float] = deque(maxlen=window)

    def update(self, x: float) -> None:
        self.values.append(float(x))

    @property
    def ready(self) -> bool:
        return len(self.values) >= self.warmup

    def expected(self) -> Expected | None:
        """Median with lower and upper bounds, or ``None`` while warming up."""
        if not self.ready:
            return None
        arr = np.fromiter(self.values, dtype=float, count=len(self.values))
        med = float(np.median(arr))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(arr - med)))
        sigma = max(sigma, self.min_sigma_ratio * abs(med))
        upper = max(med + self.mad_k * sigma, med * self.min_ratio)
        lower = max(0.0, med - self.mad_k * sigma)
        return Expected(value=med, lower=lower, upper=upper)

    def to_state(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.values = deque((float(v) for v in state.get("values", [])), maxlen=self.window)
