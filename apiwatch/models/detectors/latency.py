"""Latency spike: a bucket's tail latency above its series' robust baseline.

>>> from apiwatch.models.buckets import BucketSummary
>>> from apiwatch.models.sketch import LogSketch
>>> def bucket(ms):
...     s = LogSketch(); s.add(float(ms), 50)
...     return BucketSummary(series="s", labels={}, start_ms=0, width_s=10, count=50,
...                          latency=s.to_dict())
>>> from apiwatch.models.detection_config import BaselineConfig
>>> d = LatencySpike(LatencyConfig(baseline=BaselineConfig(warmup=5)))
>>> for ms in [100, 102, 98, 101, 99]:
...     d.learn(bucket(ms), d.judge(bucket(ms)))
>>> d.judge(bucket(100)).anomalous, d.judge(bucket(400)).anomalous
(False, True)
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Observed, Severity
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.detection_config import LatencyConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict, bound_score, seasonal_baseline
from apiwatch.models.sketch import LogSketch


class LatencySpike(BucketDetector[BucketSummary]):
    """Flags a bucket whose latency quantile exceeds the baseline's upper bound.

    Parameters
    ----------
    cfg
        Quantile, minimum sample size and baseline settings.
    """

    kind: ClassVar[AlertKind] = AlertKind.LATENCY_SPIKE

    def __init__(self, cfg: LatencyConfig) -> None:
        self.cfg = cfg
        self.baseline = seasonal_baseline(cfg.baseline)
        # Sketches of the previous buckets, pooled when one bucket has too few requests.
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(1, cfg.pool_buckets - 1))

    def _pooled(self, item: BucketSummary) -> tuple[LogSketch, int]:
        """The bucket's sketch, merged with previous ones until min_samples is reached."""
        sketch = item.sketch()
        pooled = 1
        for previous in reversed(self.recent):
            if sketch.count >= self.cfg.min_samples or pooled >= self.cfg.pool_buckets:
                break
            if previous:
                sketch.merge(LogSketch.from_dict(previous))
            pooled += 1
        return sketch, pooled

    def _value(self, item: BucketSummary) -> tuple[float, int, int] | None:
        """(quantile, requests, buckets pooled), or None with too few requests."""
        if item.count == 0:
            return None
        sketch, pooled = self._pooled(item)
        if sketch.count < self.cfg.min_samples:
            return None
        return sketch.quantile(self.cfg.quantile), sketch.count, pooled

    def judge(self, item: BucketSummary) -> Verdict:
        measured = self._value(item)
        if measured is None:
            return Verdict.unknown(f"fewer than min_samples {self.cfg.min_samples} requests")
        value, count, pooled = measured
        expected = self.baseline.expected(item.start_ms)
        if expected is None:
            return Verdict.unknown("baseline warming up")
        q = round(self.cfg.quantile * 100)
        anomalous = value > expected.upper
        ratio = value / expected.value if expected.value > 0 else float("inf")
        severity = Severity.CRITICAL if ratio >= 3 else Severity.ERROR
        return Verdict(
            anomalous=anomalous,
            score=bound_score(value, expected.value, expected.upper),
            observed=Observed(
                value=value, unit="ms", window_s=item.width_s * pooled, sample_size=count
            ),
            expected=expected,
            summary=(
                f"p{q} latency {value:.0f} ms is {ratio:.1f}x the usual {expected.value:.0f} ms "
                f"(upper bound {expected.upper:.0f} ms, {count} requests)"
            ),
            severity=severity,
            details={"quantile": self.cfg.quantile, "ratio": ratio},
            sample_event_ids=tuple(item.sample_event_ids),
        )

    def learn(self, item: BucketSummary, verdict: Verdict) -> None:
        measured = self._value(item)
        self.recent.append(item.latency)
        if measured is None:
            return
        if verdict.anomalous:
            self.baseline.hold(measured[0])
        else:
            self.baseline.update(measured[0], item.start_ms)

    def to_state(self) -> dict[str, Any]:
        return {"baseline": self.baseline.to_state(), "recent": list(self.recent)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.baseline.load_state(state.get("baseline", {}))
        self.recent = deque(state.get("recent", []), maxlen=self.recent.maxlen)
