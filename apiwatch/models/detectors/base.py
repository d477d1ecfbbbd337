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
