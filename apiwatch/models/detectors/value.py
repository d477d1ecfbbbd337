"""A univariate detector for one metric value per row, for ``apiwatch backtest SERIES.csv``.

A bucket summary has a sample size; a bare metric series (a CPU percentage, a
p95 per interval, a request count) has only values at a fixed interval. The
:class:`ValueDetector` scores each value by how surprising it is *for this
series*:

1. two residuals: distance from the rolling median of the last ``window_s``
   in robust standard deviations (MAD), and, once ``seasons`` periods are
   known, the deviation from the median of the same instant in past periods,
   against that residual's own rolling median and MAD;
2. each residual is divided by the largest of its own values over the last
   ``history_s`` (inflated while that history is still short, since the
   maximum of fewer draws is smaller), so a ratio above 1 is a new record of
   surprise: heavy-tailed and calm series land on one common scale;
3. a ratio that does not beat everything of the last ``refractory_s`` counts
   a third, so a level shift is reported at its start, not at every row of it.

The anomaly score is ``ratio / (1 + ratio)``: 0.5 is a new record.

>>> d = ValueDetector(ValueSeriesConfig(window_s=100, history_s=400, min_points=10,
...                   season_s=0), interval_s=1.0)
>>> scores = []
>>> for t in range(300):
...     p = Point(t * 1000, 10.0 + (t % 7) * 0.1 + (30.0 if t == 250 else 0.0))
...     v = d.judge(p); d.learn(p, v); scores.append(v.score)
>>> max(scores[100:250]) < 0.5 < scores[250]
True
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity
from apiwatch.models.baseline import MAD_TO_SIGMA
from apiwatch.models.detection_config import ValueSeriesConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict

_EPS = 1e-12
#: Weight of a ratio that does not beat the recent maximum (see step 3 above).
_REPEAT_WEIGHT = 1.0 / 3.0


@dataclass(frozen=True, slots=True)
class Point:
    """One observation of a metric series."""

    t_ms: int
    value: float


def _median_mad(values: deque[float] | list[float]) -> tuple[float, float]:
    arr = np.fromiter(values, dtype=float, count=len(values))
    med = float(np.median(arr))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(arr - med)))


def _points(span_s: float, interval_s: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(span_s / interval_s))))


class ValueDetector(BucketDetector[Point]):
    """Scores each value of a fixed-interval metric series, causally.

    Parameters
    ----------
    cfg
        Window, history, season and refractory spans (seconds), alert score.
    interval_s
        The series' sampling interval, which turns spans into row counts.
    """

    kind: ClassVar[AlertKind] = AlertKind.ANOMALOUS_VALUE

    def __init__(self, cfg: ValueSeriesConfig, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.cfg = cfg
        self.lifecycle = cfg.lifecycle
        self.window = _points(cfg.window_s, interval_s, cfg.min_points, cfg.max_points)
        self.history = _points(cfg.history_s, interval_s, cfg.min_points, cfg.max_points)
        self.refractory = _points(cfg.refractory_s, interval_s, 0, cfg.max_points)
        period = round(cfg.season_s / interval_s) if cfg.season_s > 0 else 0
        self.period = period if 0 < period * cfg.seasons <= 5 * cfg.max_points else 0
        keep = max(self.window, self.period * cfg.seasons + 1)
        self.values: deque[float] = deque(maxlen=keep)
        self.seasonal_errors: deque[float] = deque(maxlen=max(self.window // 2, 2))
        self.level_surprise: deque[float] = deque(maxlen=self.history)
        self.season_surprise: deque[float] = deque(maxlen=self.history)
        self.ratios: deque[float] = deque(maxlen=max(self.refractory, 1))

    # -- residuals ---------------------------------------------------------

    def _level_residual(self, x: float) -> tuple[float, float, float] | None:
        """(residual, median, sigma) against the rolling window, once half full."""
        if len(self.values) < max(self.cfg.min_points, self.window // 2):
            return None
        recent = list(self.values)[-self.window :]
        med, sigma = _median_mad(recent)
        sigma = max(sigma, 1e-3 * abs(med)) + _EPS
        return abs(x - med) / sigma, med, sigma

    def _seasonal_error(self, x: float) -> float | None:
        p, n = self.period, len(self.values)
        if p == 0 or n < 2 * p:
            return None
        past = [self.values[n - k * p] for k in range(1, self.cfg.seasons + 1) if n - k * p >= 0]
        return x - float(np.median(past))

    def _seasonal_residual(self, err: float | None) -> float | None:
        if err is None or len(self.seasonal_errors) < self.seasonal_errors.maxlen:  # type: ignore[operator]
            return None
        med, sigma = _median_mad(self.seasonal_errors)
        return abs(err - med) / (sigma + _EPS)

    def _ratio(self, r: float | None, past: deque[float]) -> float:
        """The residual over the largest in the history, inflated while history is short."""
        m = len(past)
        if r is None or m < self.cfg.min_points:
            return 0.0
        reference = max(past) * math.sqrt(math.log(self.history) / math.log(m))
        return r / (reference + _EPS)

    # -- the detector interface --------------------------------------------

    def _scores(self, x: float) -> tuple[float, float, float | None, float | None, Any]:
        level = self._level_residual(x)
        err = self._seasonal_error(x)
        seasonal = self._seasonal_residual(err)
        r_level = level[0] if level is not None else None
        ratio = max(
            self._ratio(r_level, self.level_surprise), self._ratio(seasonal, self.season_surprise)
        )
        effective = ratio * _REPEAT_WEIGHT if self.ratios and ratio <= max(self.ratios) else ratio
        return ratio, effective, r_level, seasonal, (level, err)

    def judge(self, item: Point) -> Verdict:
        _, effective, _, _, (level, _) = self._scores(item.value)
        if level is None:
            return Verdict.unknown("window filling")
        score = effective / (1.0 + effective)
        _, med, sigma = level
        return Verdict(
            anomalous=score >= self.cfg.alert_score,
            score=score,
            observed=Observed(value=item.value, window_s=0.0, sample_size=1),
            expected=Expected(value=med, lower=med - 3 * sigma, upper=med + 3 * sigma),
            summary=f"value {item.value:g} where about {med:g} was expected",
            severity=Severity.WARNING,
        )

    def learn(self, item: Point, verdict: Verdict) -> None:
        # A bare series has no sample size to tell an outage from a new normal,
        # so everything is learned: the rolling median shrugs off short
        # anomalies, the surprise records damp repeats, and a level shift
        # becomes the norm after half a window.
        ratio, _, r_level, seasonal, (_, err) = self._scores(item.value)
        if r_level is not None:
            self.level_surprise.append(r_level)
        if seasonal is not None:
            self.season_surprise.append(seasonal)
        if err is not None:
            self.seasonal_errors.append(err)
        if self.refractory:
            self.ratios.append(ratio)
        self.values.append(float(item.value))

    def to_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "seasonal_errors": list(self.seasonal_errors),
            "level_surprise": list(self.level_surprise),
            "season_surprise": list(self.season_surprise),
            "ratios": list(self.ratios),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for name in ("values", "seasonal_errors", "level_surprise", "season_surprise", "ratios"):
            current: deque[float] = getattr(self, name)
            setattr(self, name, deque(map(float, state.get(name, [])), maxlen=current.maxlen))
