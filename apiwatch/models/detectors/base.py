"""The uniform detector interface: judge a bucket, then learn from it.

A detector watches one statistic of one series. For each bucket summary the
monitor calls :meth:`BucketDetector.judge`, hands the verdict to the alert
lifecycle, then calls :meth:`BucketDetector.learn` with the same verdict, so a
detector decides for itself not to learn from what it judged anomalous
(scoring is kept apart from deciding, as in river's ``AnomalyFilter``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity
from apiwatch.models.baseline import RobustBaseline, SeasonalBaseline
from apiwatch.models.detection_config import BaselineConfig, LifecycleConfig

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One bucket judged: anomalous (True/False), or not judgeable (None)."""

    anomalous: bool | None
    score: float = 0.0
    observed: Observed | None = None
    expected: Expected | None = None
    summary: str = ""
    severity: Severity = Severity.WARNING
    details: dict[str, Any] = field(default_factory=dict)
    sample_event_ids: tuple[str, ...] = ()

    @classmethod
    def unknown(cls, why: str) -> Verdict:
        return cls(anomalous=None, details={"skipped": why})


class BucketDetector(ABC, Generic[T]):
    """Scores one statistic of a series, one input (bucket or run) at a time."""

    kind: ClassVar[AlertKind]
    #: Lifecycle settings for this detector's alerts; None = the shared default.
    lifecycle: LifecycleConfig | None = None

    @abstractmethod
    def judge(self, item: T) -> Verdict:
        """Judge ``item`` against what was learned so far; must not change state."""

    @abstractmethod
    def learn(self, item: T, verdict: Verdict) -> None:
        """Update the baseline, skipping what was judged anomalous."""

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """JSON-able state, enough for :meth:`load_state` to resume exactly."""

    @abstractmethod
    def load_state(self, state: dict[str, Any]) -> None: ...


def rolling_baseline(cfg: BaselineConfig) -> RobustBaseline:
    return RobustBaseline(
        cfg.window, cfg.warmup, cfg.mad_k, cfg.min_ratio, relearn_after=cfg.relearn_after
    )


def seasonal_baseline(cfg: BaselineConfig) -> SeasonalBaseline:
    return SeasonalBaseline(rolling_baseline(cfg), seasonal_weight=cfg.seasonal_weight)


def bound_score(value: float, center: float, bound: float) -> float:
    """0 at the center, 0.5 at the bound, approaching 1 far beyond it (either side).

    >>> bound_score(100, 100, 150), bound_score(150, 100, 150), round(bound_score(400, 100, 150), 2)
    (0.0, 0.5, 0.86)
    >>> bound_score(0, 100, 40)
    0.625
    """
    span = bound - center
    if span == 0:
        return 1.0 if value != center else 0.0
    z = max(0.0, (value - center) / span)
    return z / (1.0 + z)
