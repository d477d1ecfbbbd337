"""Error surge: a series' 5xx rate above its baseline rate, by a binomial test.

The baseline rate pools the requests and 5xx of the last ``window`` buckets
judged normal. The recent ``window_buckets`` buckets are pooled too, so an
endpoint at one request per second is judged on a few dozen requests rather
than on ten, and the test is the exact binomial tail of the observed 5xx count
under the baseline rate: it respects the sample size, so two failures out of
three requests at night stay quiet while 30 out of 300 fire. A minimum error
count and a minimum absolute increase keep a statistically real but trivial
rise (0.1 % to 0.3 % on a busy endpoint) from paging anyone.

>>> from apiwatch.models.buckets import BucketSummary
>>> def bucket(n, e):
...     return BucketSummary(series="s", labels={}, start_ms=0, width_s=10, count=n, errors_5xx=e)
>>> d = ErrorSurge(ErrorSurgeConfig(warmup=5))
>>> for _ in range(10):
...     d.learn(bucket(100, 1), d.judge(bucket(100, 1)))
>>> d.judge(bucket(100, 2)).anomalous, d.judge(bucket(100, 30)).anomalous
(False, True)
>>> d.judge(bucket(3, 2)).anomalous is None  # pooled window still judged on 203 requests
False
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity
from apiwatch.models.baseline import ShiftGuard
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.detection_config import ErrorSurgeConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict, bound_score
from apiwatch.models.stats import binomial_isf, binomial_sf

Pair = tuple[int, int]  # (requests, 5xx)


class ErrorSurge(BucketDetector[BucketSummary]):
    """Flags a 5xx rate significantly and materially above the series' baseline.

    Parameters
    ----------
    cfg
        Pooling window, minimum volume, minimum increase, test level and baseline.
    """

    kind: ClassVar[AlertKind] = AlertKind.ERROR_SURGE

    def __init__(self, cfg: ErrorSurgeConfig) -> None:
        self.cfg = cfg
        self.accepted: deque[Pair] = deque(maxlen=cfg.window)
        self.recent: deque[Pair] = deque(maxlen=max(1, cfg.window_buckets - 1))
        self.guard = ShiftGuard[Pair](cfg.relearn_after, keep=cfg.window)

    def baseline_rate(self) -> float:
        n = sum(p[0] for p in self.accepted)
        e = sum(p[1] for p in self.accepted)
        return max(self.cfg.baseline_floor, e / n if n else 0.0)

    def judge(self, item: BucketSummary) -> Verdict:
        cfg = self.cfg
        pooled = list(self.recent)[-(cfg.window_buckets - 1) :] if cfg.window_buckets > 1 else []
        n = item.count + sum(p[0] for p in pooled)
        x = item.errors_5xx + sum(p[1] for p in pooled)
        if n < cfg.min_requests:
            return Verdict.unknown(f"{n} requests < min_requests {cfg.min_requests}")
        if len(self.accepted) < cfg.warmup:
            return Verdict.unknown("baseline warming up")
        p0 = self.baseline_rate()
        rate = x / n
        bound = max(binomial_isf(cfg.alpha, n, p0) / n, p0 + cfg.min_increase)
        p_value = binomial_sf(x, n, p0)
        anomalous = x >= cfg.min_errors and rate >= p0 + cfg.min_increase and p_value < cfg.alpha
        severity = (
            Severity.CRITICAL
            if rate >= 0.5
            else Severity.ERROR
            if rate >= 0.1
            else Severity.WARNING
        )
        window_s = item.width_s * (1 + len(pooled))
        return Verdict(
            anomalous=anomalous,
            score=bound_score(rate, p0, bound),
            observed=Observed(value=rate, unit="ratio", window_s=window_s, sample_size=n),
            expected=Expected(value=p0, lower=0.0, upper=min(1.0, bound)),
            summary=(
                f"5xx rate {rate:.1%} ({x} of {n} requests in {window_s:.0f} s) against a "
                f"usual {p0:.2%} (alert above {min(1.0, bound):.1%})"
            ),
            severity=severity,
            details={"errors_5xx": x, "requests": n, "p_value": p_value},
            sample_event_ids=tuple(item.sample_event_ids),
        )

    def learn(self, item: BucketSummary, verdict: Verdict) -> None:
        pair = (item.count, item.errors_5xx)
        self.recent.append(pair)
        if item.count == 0:
            return
        if verdict.anomalous:
            adopted = self.guard.hold(pair)
            if adopted is not None:  # a lasting new rate: start over from it
                self.accepted.clear()
                self.accepted.extend(adopted)
        else:
            self.accepted.append(pair)
            self.guard.normal()

    def to_state(self) -> dict[str, Any]:
        return {
            "accepted": [list(p) for p in self.accepted],
            "recent": [list(p) for p in self.recent],
            "guard": self.guard.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.accepted = deque(
            ((int(a), int(b)) for a, b in state.get("accepted", [])), maxlen=self.cfg.window
        )
        self.recent = deque(
            ((int(a), int(b)) for a, b in state.get("recent", [])), maxlen=self.recent.maxlen
        )
        self.guard.load_state(state.get("guard", {}), lambda p: (int(p[0]), int(p[1])))
