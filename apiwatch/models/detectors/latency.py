"""Latency spike: a bucket's tail latency above its series' robust baseline.

Two conditions, both needed. The bucket's quantile (p95) must exceed the
baseline's upper bound, which is how big a rise must be to matter. And the
number of its requests slower than the usual p95, or than the bound, must be
improbable given how often recent normal requests were that slow: a
beta-binomial tail below ``alpha``, which is what makes the rule respect the
sample size. On a quiet endpoint a p95 of 20 pooled requests is their
second-slowest, so two slow requests move it past any bound; they are not a
spike unless two in twenty is rare for the endpoint. On a busy one the test
is easily met, and the bound alone decides.

>>> from apiwatch.models.buckets import BucketSummary
>>> from apiwatch.models.sketch import LogSketch
>>> def bucket(ms, slow=0):
...     s = LogSketch(); s.add(float(ms), 50 - slow); s.add(4.0 * ms, slow)
...     return BucketSummary(series="s", labels={}, start_ms=0, width_s=10, count=50,
...                          latency=s.to_dict())
>>> from apiwatch.models.detection_config import BaselineConfig
>>> d = LatencySpike(LatencyConfig(baseline=BaselineConfig(warmup=5)))
>>> for ms in [100, 102, 98, 101, 99]:
...     d.learn(bucket(ms, slow=1), d.judge(bucket(ms, slow=1)))
>>> d.judge(bucket(100)).anomalous, d.judge(bucket(400)).anomalous
(False, True)
>>> d.judge(bucket(100, slow=3)).anomalous  # p95 at 400 ms, but 3 slow in 50 is not rare here
False
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Observed, Severity
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.detection_config import LatencyConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict, bound_score, seasonal_baseline
from apiwatch.models.reference import TailReference
from apiwatch.models.sketch import LogSketch
from apiwatch.models.stats import beta_binomial_sf


class LatencySpike(BucketDetector[BucketSummary]):
    """Flags a bucket whose latency quantile exceeds the baseline's upper bound.

    Parameters
    ----------
    cfg
        Quantile, minimum sample size, test level and baseline settings.
    """

    kind: ClassVar[AlertKind] = AlertKind.LATENCY_SPIKE

    def __init__(self, cfg: LatencyConfig) -> None:
        self.cfg = cfg
        self.baseline = seasonal_baseline(cfg.baseline)
        # Sketches of the previous buckets, pooled when one bucket has too few requests.
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(1, cfg.pool_buckets - 1))
        # Latencies of requests judged normal, and of those held as anomalous: when the
        # baseline adopts a held level, the reference adopts the held requests with it.
        self.reference = TailReference(cfg.baseline.window)
        self.held = TailReference(cfg.baseline.window)
        # The bucket last judged and its pooled sketch, so learn() does not merge the same
        # sketches again; a memo, not state (to_state leaves it out).
        self._judged: tuple[BucketSummary, tuple[LogSketch, int] | None] | None = None

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

    def _measure(self, item: BucketSummary) -> tuple[LogSketch, int] | None:
        """(pooled sketch, buckets pooled), or None with too few requests."""
        if item.count == 0:
            return None
        sketch, pooled = self._pooled(item)
        if sketch.count < self.cfg.min_samples:
            return None
        return sketch, pooled

    def judge(self, item: BucketSummary) -> Verdict:
        measured = self._measure(item)
        self._judged = (item, measured)
        if measured is None:
            return Verdict.unknown(f"fewer than min_samples {self.cfg.min_samples} requests")
        sketch, pooled = measured
        value, count = sketch.quantile(self.cfg.quantile), sketch.count
        expected = self.baseline.expected(item.start_ms)
        if expected is None:
            return Verdict.unknown("baseline warming up")
        q = round(self.cfg.quantile * 100)
        ratio = value / expected.value if expected.value > 0 else float("inf")
        details: dict[str, Any] = {"quantile": self.cfg.quantile, "ratio": ratio}
        anomalous = False
        summary = (
            f"p{q} latency {value:.0f} ms is {ratio:.1f}x the usual {expected.value:.0f} ms "
            f"(upper bound {expected.upper:.0f} ms, {count} requests)"
        )
        if value > expected.upper:  # the test only matters, and only costs, past the bound
            p_value, slow, cut, share = self._surprise(sketch, expected.upper)
            anomalous = p_value < self.cfg.alpha
            details.update(slow_requests=slow, slower_than_ms=cut, usual_share=share)
            details["p_value"] = p_value
            summary += (
                f"; {slow} of {count} slower than {cut:.0f} ms, where {share:.1%} usually are"
            )
        return Verdict(
            anomalous=anomalous,
            score=bound_score(value, expected.value, expected.upper),
            observed=Observed(
                value=value, unit="ms", window_s=item.width_s * pooled, sample_size=count
            ),
            expected=expected,
            summary=summary,
            severity=Severity.CRITICAL if ratio >= 3 else Severity.ERROR,
            details=details,
            sample_event_ids=tuple(item.sample_event_ids),
        )

    def _surprise(self, sketch: LogSketch, upper: float) -> tuple[float, int, float, float]:
        """(p-value, slow requests, the latency they exceed, its usual share).

        Two counts, each against the share of recent normal requests beyond the
        same latency: those slower than the usual quantile, which a shift of the
        whole distribution fills, and those slower than the upper bound, which
        a few very slow requests fill. The smaller p-value, doubled (Bonferroni),
        decides.
        """
        best: tuple[float, int, float, float] = (1.0, 0, upper, 0.0)
        cuts = [upper]
        usual_quantile = self.reference.quantile(self.cfg.quantile)
        if usual_quantile is not None and usual_quantile < upper:
            cuts.insert(0, usual_quantile)
        for cut in cuts:
            slow = self.reference.exceed(sketch, cut)
            usual, total = self.reference.tail(cut)
            p = beta_binomial_sf(slow, sketch.count, usual + 0.5, total - usual + 0.5)
            if p < best[0]:
                best = (p, slow, cut, usual / total if total > 0 else 0.0)
        return (min(1.0, best[0] * len(cuts)), *best[1:])

    def learn(self, item: BucketSummary, verdict: Verdict) -> None:
        judged, self._judged = self._judged, None
        measured = judged[1] if judged is not None and judged[0] is item else self._measure(item)
        self._remember(item.latency)
        if measured is None:
            return
        value = measured[0].quantile(self.cfg.quantile)
        # The bucket's own requests, not the pooled window: pooled ones were counted already.
        own = item.sketch()
        if verdict.anomalous:
            self.held.add(own)
            if self.baseline.hold(value):
                self.reference, self.held = self.held, TailReference(self.cfg.baseline.window)
            return
        self.baseline.update(value, item.start_ms)
        self.reference.add(own)
        if not self.baseline.holding and self.held.total:
            self.held = TailReference(self.cfg.baseline.window)

    def _remember(self, latency: dict[str, Any]) -> None:
        """Keep the recent sketches the next bucket may pool, and no more.

        The next bucket has at least one request of its own, so sketches beyond
        those holding ``min_samples - 1`` requests would never be merged; a busy
        endpoint keeps one, which keeps its state (and changelog) small.
        """
        self.recent.append(latency)
        counts = [int(r.get("count", 0)) for r in self.recent]
        while len(counts) > 1 and sum(counts[1:]) >= self.cfg.min_samples - 1:
            counts.pop(0)
            self.recent.popleft()

    def to_state(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_state(),
            "recent": list(self.recent),
            "reference": self.reference.to_state(),
            "held": self.held.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.baseline.load_state(state.get("baseline", {}))
        self.recent = deque(state.get("recent", []), maxlen=self.recent.maxlen)
        self.reference.load_state(state.get("reference", {}))
        self.held.load_state(state.get("held", {}))
