"""Traffic anomaly: an endpoint's request volume collapsing or surging.

Volume per bucket is compared with a seasonal baseline (rolling robust median,
shifted towards the daily and weekly profile once known). A collapse is a
count far below expectation *and* improbable under a Poisson law with the
expected rate; the empty summaries the folder emits for a quiet series make a
silent endpoint the extreme case: zero requests where fifty were expected.
A surge is the mirror image, with a larger ratio since bursts are ordinary.
Endpoints expecting only a handful of requests per bucket are not judged on
drops: silence there is not evidence.

>>> from apiwatch.models.buckets import BucketSummary
>>> from apiwatch.models.detection_config import BaselineConfig
>>> def bucket(t, n):
...     return BucketSummary(series="s", labels={}, start_ms=t * 10_000, width_s=10, count=n)
>>> d = TrafficAnomaly(TrafficConfig(baseline=BaselineConfig(warmup=5, min_ratio=1.0)))
>>> for t, n in enumerate([50, 52, 48, 51, 49, 50]):
...     d.learn(bucket(t, n), d.judge(bucket(t, n)))
>>> [d.judge(bucket(7, n)).anomalous for n in (47, 0, 400)]
[False, True, True]
"""

from __future__ import annotations

from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Observed, Severity
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.detection_config import TrafficConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict, bound_score, seasonal_baseline
from apiwatch.models.stats import poisson_cdf, poisson_sf


class TrafficAnomaly(BucketDetector[BucketSummary]):
    """Flags a request count far below (or above) its seasonal expectation.

    Parameters
    ----------
    cfg
        Drop and surge ratios, Poisson test level, minimum expected volume, baseline.
    """

    kind: ClassVar[AlertKind] = AlertKind.TRAFFIC_ANOMALY

    def __init__(self, cfg: TrafficConfig) -> None:
        self.cfg = cfg
        self.lifecycle = cfg.lifecycle
        self.baseline = seasonal_baseline(cfg.baseline)

    def judge(self, item: BucketSummary) -> Verdict:
        cfg = self.cfg
        expected = self.baseline.expected(item.start_ms)
        if expected is None:
            return Verdict.unknown("baseline warming up")
        lam, n = expected.value, item.count
        low_bound = min(expected.lower, lam * cfg.max_drop)
        high_bound = max(expected.upper, lam * cfg.surge_ratio)
        collapse = lam >= cfg.min_expected and n < low_bound and poisson_cdf(n, lam) < cfg.alpha
        surge = n > high_bound and poisson_sf(n, max(lam, 1.0)) < cfg.alpha
        if collapse:
            what = "went silent" if n == 0 else f"collapsed to {n} requests"
            score = bound_score(n, lam, low_bound)
            severity = Severity.CRITICAL if n == 0 else Severity.ERROR
        else:
            what = f"surged to {n} requests"
            score = bound_score(n, lam, high_bound) if n > lam else bound_score(n, lam, low_bound)
            severity = Severity.WARNING
        return Verdict(
            anomalous=collapse or surge,
            score=score,
            observed=Observed(value=n, unit="requests", window_s=item.width_s, sample_size=n),
            expected=expected.model_copy(update={"lower": low_bound, "upper": high_bound}),
            summary=(
                f"traffic {what} in {item.width_s:.0f} s where about {lam:.0f} were expected "
                f"(normal range {low_bound:.0f}-{high_bound:.0f})"
            ),
            severity=severity,
            details={"direction": "drop" if collapse else "surge", "late": item.late},
            sample_event_ids=tuple(item.sample_event_ids),
        )

    def learn(self, item: BucketSummary, verdict: Verdict) -> None:
        if verdict.anomalous:
            self.baseline.hold(item.count)
        else:
            self.baseline.update(item.count, item.start_ms)

    def to_state(self) -> dict[str, Any]:
        return {"baseline": self.baseline.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.baseline.load_state(state.get("baseline", {}))
