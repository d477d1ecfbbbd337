"""A univariate detector for one metric value per row, for ``apiwatch backtest SERIES.csv``.

A bucket summary has a sample size; a bare metric series (a CPU percentage, a
p95 per interval, a request count) has only values at a fixed interval. The
:class:`ValueDetector` scores each value by how improbable it is *for this
series*, causally:

1. robust residuals: the value against the rolling median of the last
   ``window_s`` (in MAD units), its change from the previous row against the
   usual changes, and, once ``seasons`` periods are known, its deviation from
   the median of the same instant in past periods against the usual such
   deviations; and its surprisal as the next symbol of the series' recent
   sequence (:class:`~apiwatch.models.sequence.SequenceSurprise`), which sees
   an ordinary value in an unusual place, as when a pattern changes;
2. each residual's tail probability among its own values of the last
   ``history_s`` (:func:`~apiwatch.models.likelihood.tail_probability`), so
   heavy-tailed and calm series land on one scale; the smallest, times the
   number of residuals, is the row's instant probability;
3. HTM's anomaly likelihood over ``1 - instant probability``
   (:class:`~apiwatch.models.likelihood.AnomalyLikelihood`) adds what a single
   row does not show: a level or a variance that has been unusual for the
   last ``short_s``. Once the seasonal residual has seen a whole period, the
   level and sequence residuals count there only as far as the value is
   unusual for the time of day too;
4. the score is ``-log10(p) / 10`` of the smaller probability (HTM's log
   likelihood: 0.4 is a one-in-10,000 row). A row is anomalous when its score
   reaches ``alert_score`` and beats every score of the last
   ``refractory_s``, so an incident is flagged at its start, not at every
   row of it;
5. the reported score rates each incident once: scores often rise for a few
   rows as the likelihood fills, so a rising run is reported on the row after
   its peak, at the peak's score, when that beats every score of the
   ``refractory_s`` before the run; every other row reports a third of its
   own score. Ranking or thresholding the reported scores then counts an
   incident once, a row late, instead of once per row of its rise.

>>> d = ValueDetector(ValueSeriesConfig(window_s=100, history_s=400, min_points=10,
...                   season_s=0), interval_s=1.0)
>>> scores = []
>>> for t in range(300):
...     p = Point(t * 1000, 10.0 + (t % 7) * 0.1 + (30.0 if t == 250 else 0.0))
...     v = d.judge(p); d.learn(p, v); scores.append(v.score)
>>> max(scores[100:250]) < 0.5 < scores[251]  # the spike's row, reported a row late
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
from apiwatch.models.likelihood import AnomalyLikelihood, tail_probability
from apiwatch.models.sequence import SequenceSurprise

_EPS = 1e-12
#: Weight of a score that does not beat the recent maximum (see step 4 above).
_REPEAT_WEIGHT = 1.0 / 3.0
#: Probabilities are floored here: a score of 1 is a one-in-10^10 row.
_P_FLOOR = 1e-10


@dataclass(frozen=True, slots=True)
class Point:
    """One observation of a metric series."""

    t_ms: int
    value: float


def _median_sigma(values: deque[float]) -> tuple[float, float]:
    """Median and MAD-based sigma (upper medians: two partitions, no np.median overhead)."""
    n = len(values)
    arr = np.fromiter(values, dtype=float, count=n)
    arr.partition(n // 2)
    med = float(arr[n // 2])
    dev = np.abs(arr - med)
    dev.partition(n // 2)
    return med, MAD_TO_SIGMA * float(dev[n // 2])


def _points(span_s: float, interval_s: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(span_s / interval_s))))


@dataclass(frozen=True, slots=True)
class _Scored:
    """What judging a value found, reused when the same value is learned."""

    item: Point
    residuals: tuple[float | None, ...]
    errors: tuple[float | None, ...]
    raw: float | None
    score: float
    effective: float
    reported: float
    run_prior: float | None
    median: float
    sigma: float


#: Residual names, in the order of ``_Scored.residuals``; the last is the sequence surprisal.
_NAMES = ("level", "change", "season", "pattern")
_LEVEL, _SEASON, _PATTERN = 0, 2, 3


class ValueDetector(BucketDetector[Point]):
    """Scores each value of a fixed-interval metric series, causally.

    Parameters
    ----------
    cfg
        Window, history, season, likelihood and refractory spans (seconds), alert score.
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
        # Per residual: its signed errors (robust centre and scale) and its past |z|.
        self.errors = [deque[float](maxlen=self.window) for _ in _NAMES[:_PATTERN]]
        self.surprise = [deque[float](maxlen=self.history) for _ in _NAMES]
        # Surprisals a residual needs before it votes. The seasonal one must have
        # seen a whole period: its first sight of each daily event is not news.
        # The sequence model could vote long before the value residuals, but the
        # likelihood would then learn a calm that ends when they join.
        self._needed = [cfg.min_points] * len(_NAMES)
        self._needed[_SEASON] = max(cfg.min_points, min(self.period, self.history))
        self._needed[_PATTERN] = max(cfg.min_points, self.window // 2)
        self.sequence = (
            SequenceSurprise(cfg.pattern_bins, cfg.pattern_order, self.history, cfg.min_points)
            if cfg.pattern_bins
            else None
        )
        short = _points(cfg.short_s, interval_s, 1, cfg.max_points)
        self.likelihood = AnomalyLikelihood(short, self.history, cfg.min_points)
        self.scores: deque[float] = deque(maxlen=max(self.refractory, 1))
        # The previous row's score, and the best score of the refractory span before
        # the current rising run began (what its peak must beat to be reported).
        self.previous: float | None = None
        self.run_prior = 0.0
        self._last: _Scored | None = None

    # -- residuals ---------------------------------------------------------

    def _errors(self, x: float) -> tuple[float | None, ...]:
        """Signed errors of ``x``: vs nothing (level), the previous row, past periods."""
        n, p = len(self.values), self.period
        change = x - self.values[-1] if n else None
        season = None
        if p and n >= 2 * p:
            past = [self.values[n - k * p] for k in range(1, self.cfg.seasons + 1) if n >= k * p]
            season = x - sorted(past)[len(past) // 2]
        return x, change, season

    def _residual(
        self, k: int, err: float | None, floor: float
    ) -> tuple[float, float, float] | None:
        """(|z|, centre, sigma) of an error against its own recent errors, once known."""
        past = self.errors[k]
        if err is None or len(past) < max(self.cfg.min_points, self.window // 2):
            return None
        med, sigma = _median_sigma(past)
        # A series that sits still (MAD 0) is judged against a thousandth of its level.
        sigma = max(sigma, floor, 1e-3 * abs(med) if k == 0 else 0.0) + _EPS
        return abs(err - med) / sigma, med, sigma

    def _score(self, item: Point) -> _Scored:
        if self._last is not None and self._last.item == item:
            return self._last
        errors = self._errors(float(item.value))
        level = self._residual(0, errors[0], 0.0)
        floor = 1e-3 * abs(level[1]) if level is not None else 0.0
        found = [level] + [self._residual(k, e, floor) for k, e in enumerate(errors) if k]
        pattern = self.sequence.surprisal(float(item.value)) if self.sequence else None
        residuals = (*(f[0] if f is not None else None for f in found), pattern)
        voting = {
            k: tail_probability(self.surprise[k], z)
            for k, z in enumerate(residuals)
            if z is not None and len(self.surprise[k]) >= self._needed[k]
        }
        raw = None
        p = 1.0
        if voting:
            p_instant = min(1.0, min(voting.values()) * len(voting))
            # The likelihood judges sustained surprise, and a level or a stretch of
            # the sequence that is usual for this time of day is not: once the
            # seasonal residual votes, they count only as surprising as the value
            # is against the season too, or a daily hour-long peak (or the rarer
            # half of a square wave) would page every day.
            if _SEASON in voting:
                for k in (_LEVEL, _PATTERN):
                    if k in voting:
                        voting[k] = max(voting[k], voting[_SEASON])
            raw = 1.0 - min(1.0, min(voting.values()) * len(voting))
            p = min(p_instant, self.likelihood.probability(raw))
        score = min(1.0, -math.log10(max(p, _P_FLOOR)) * 0.1)
        recent = max(self.scores) if self.scores else 0.0
        effective = score * _REPEAT_WEIGHT if self.scores and score <= recent else score
        reported, run_prior = score * _REPEAT_WEIGHT, None
        if self.previous is not None and score <= self.previous:  # the run peaked last row
            if self.previous > self.run_prior:
                reported = max(reported, self.previous)
            run_prior = recent  # a new run starts here
        med, sigma = (level[1], level[2]) if level is not None else (float(item.value), 0.0)
        self._last = _Scored(
            item, residuals, errors, raw, score, effective, reported, run_prior, med, sigma
        )
        return self._last

    # -- the detector interface --------------------------------------------

    def judge(self, item: Point) -> Verdict:
        s = self._score(item)
        if s.raw is None:
            return Verdict.unknown("window filling")
        return Verdict(
            anomalous=s.effective >= self.cfg.alert_score,
            score=s.reported,
            observed=Observed(value=item.value, window_s=0.0, sample_size=1),
            expected=Expected(
                value=s.median, lower=s.median - 3 * s.sigma, upper=s.median + 3 * s.sigma
            ),
            summary=f"value {item.value:g} where about {s.median:g} was expected",
            severity=Severity.WARNING,
            details={name: round(z, 3) for name, z in zip(_NAMES, s.residuals, strict=True) if z},
        )

    def learn(self, item: Point, verdict: Verdict) -> None:
        # A bare series has no sample size to tell an outage from a new normal,
        # so everything is learned: the rolling medians shrug off short
        # anomalies, the tail probabilities widen after a burst, and a level
        # shift becomes the norm after half a window.
        s = self._score(item)
        self._last = None
        for k, z in enumerate(s.residuals):
            if z is not None:
                self.surprise[k].append(z)
        for k, err in enumerate(s.errors):
            if err is not None:
                self.errors[k].append(err)
        if self.sequence is not None:
            self.sequence.learn(float(item.value))
        if s.raw is not None:
            self.likelihood.learn(s.raw)
        if self.refractory:
            self.scores.append(s.score)
        self.previous = s.score
        if s.run_prior is not None:
            self.run_prior = s.run_prior
        self.values.append(float(item.value))

    def to_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "errors": [list(d) for d in self.errors],
            "surprise": [list(d) for d in self.surprise],
            "likelihood": self.likelihood.to_state(),
            "scores": list(self.scores),
            "previous": self.previous,
            "run_prior": self.run_prior,
            "sequence": self.sequence.to_state() if self.sequence else {},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        def restore(current: deque[float], saved: Any) -> deque[float]:
            return deque(map(float, saved or []), maxlen=current.maxlen)

        self._last = None
        self.values = restore(self.values, state.get("values"))
        self.scores = restore(self.scores, state.get("scores"))
        previous = state.get("previous")
        self.previous = float(previous) if previous is not None else None
        self.run_prior = float(state.get("run_prior", 0.0))
        for name in ("errors", "surprise"):
            saved = state.get(name) or []
            current: list[deque[float]] = getattr(self, name)
            for k in range(len(current)):
                current[k] = restore(current[k], saved[k] if k < len(saved) else [])
        self.likelihood.load_state(state.get("likelihood", {}))
        if self.sequence is not None:
            self.sequence.load_state(state.get("sequence") or {})
