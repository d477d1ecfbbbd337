"""Error surge: a series' 5xx rate above its baseline rate, by an exact tail test.

The baseline rate pools the requests and 5xx of the last ``window`` buckets
judged normal, leaving out those still inside the windows under test (and
taking them back if a surge is found there), so a surge that builds slowly
does not raise its own baseline. The recent ``window_buckets`` buckets (1 min)
are pooled too, so an endpoint at one request per second is judged on a few
dozen requests rather than on ten; a ``long_window_buckets`` window (5 min)
is also tested, for a modest surge on a quiet endpoint that a minute cannot
show, and fires only while the short window's rate is still up, so the
alert resolves when the errors stop. The test is the exact beta-binomial tail
of the observed 5xx count given the baseline's own requests and 5xx (the
binomial tail once the history is long), Bonferroni-corrected over the two
windows: it respects both sample sizes, so two failures out of three
requests at night stay quiet while 30 out of 300 fire. A minimum error count
and a minimum absolute increase keep a statistically real but trivial rise
(0.1 % to 0.3 % on a busy endpoint) from paging anyone.

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
from apiwatch.models.stats import beta_binomial_isf, beta_binomial_sf

Pair = tuple[int, int]  # (requests, 5xx)
Window = tuple[int, int, int]  # (buckets, requests, 5xx)


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
        longest = max(cfg.window_buckets, cfg.long_window_buckets)
        self.recent: deque[Pair] = deque(maxlen=max(1, longest - 1))
        # Per recent bucket, whether it went into ``accepted``: those are still inside the
        # tested windows, so the baseline leaves them out, and unlearns them on an anomaly.
        self.fresh: deque[bool] = deque(maxlen=self.recent.maxlen)
        self.guard = ShiftGuard[Pair](cfg.relearn_after, keep=cfg.window)

    def baseline(self) -> tuple[float, int]:
        """(5xx rate, requests) of the accepted buckets older than the windows under test.

        A surge that builds slowly is judged normal in its first buckets; were they
        counted, the baseline would climb with the surge it should expose.
        """
        pairs = list(self.accepted)
        older = pairs[: len(pairs) - sum(self.fresh)]
        if len(older) >= self.cfg.warmup:  # until then, a few buckets would be too noisy
            pairs = older
        n = sum(p[0] for p in pairs)
        e = sum(p[1] for p in pairs)
        return max(self.cfg.baseline_floor, e / n if n else 0.0), n

    def _windows(self, item: BucketSummary) -> list[Window]:
        """(buckets, requests, 5xx) of the short window and, if configured, the long one."""
        cfg = self.cfg
        sizes = [cfg.window_buckets]
        if cfg.long_window_buckets:  # the config ensures it is the longer one
            sizes.append(cfg.long_window_buckets)
        pairs = [*self.recent, (item.count, item.errors_5xx)]
        out = []
        for size in sizes:
            tail = pairs[-size:]
            out.append((len(tail), sum(p[0] for p in tail), sum(p[1] for p in tail)))
        return out

    def _significant(
        self, window: Window, p0: float, prior: tuple[float, float], alpha: float
    ) -> tuple[bool, float]:
        """Whether a window's 5xx are a surge over the baseline, and the p-value."""
        cfg = self.cfg
        _, n, x = window
        if n < cfg.min_requests or x < cfg.min_errors or x / n < p0 + cfg.min_increase:
            return False, 1.0
        p_value = beta_binomial_sf(x, n, *prior)
        return p_value < alpha, p_value

    def judge(self, item: BucketSummary) -> Verdict:
        cfg = self.cfg
        windows = self._windows(item)
        if windows[-1][1] < cfg.min_requests:
            return Verdict.unknown(f"{windows[-1][1]} requests < min_requests {cfg.min_requests}")
        if len(self.accepted) < cfg.warmup:
            return Verdict.unknown("baseline warming up")
        p0, n0 = self.baseline()
        # The baseline rate is itself an estimate from n0 requests: the test is the
        # beta-binomial tail, which for a long history is the binomial one.
        prior = (p0 * n0 + 0.5, (1.0 - p0) * n0 + 0.5)
        # Bonferroni over the windows tested, so the second window adds no false alerts.
        alpha = cfg.alpha / len(windows)
        shown = windows[0]
        anomalous, p_value = self._significant(shown, p0, prior, alpha)
        if not anomalous and len(windows) > 1:
            # The long window finds a modest surge on a quiet endpoint, but only while the
            # short one still shows it, so the alert resolves once the errors stop.
            _, n, x = shown
            still_up = n > 0 and x / n >= p0 + cfg.min_increase
            long_hit, long_p = self._significant(windows[1], p0, prior, alpha)
            if still_up and long_hit:
                anomalous, p_value, shown = True, long_p, windows[1]
        if shown[1] == 0:  # nothing in the short window: show the long one
            shown = windows[-1]
        buckets, n, x = shown
        rate = x / n
        bound = max(beta_binomial_isf(alpha, n, *prior) / n, p0 + cfg.min_increase)
        severity = (
            Severity.CRITICAL
            if rate >= 0.5
            else Severity.ERROR
            if rate >= 0.1
            else Severity.WARNING
        )
        window_s = item.width_s * buckets
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
        if verdict.anomalous:
            # The buckets accepted while this surge built up were its start: take them back.
            undone = [self.accepted.pop() for _ in range(min(sum(self.fresh), len(self.accepted)))]
            self.fresh.clear()
            for held in reversed(undone):
                self._hold(held)
        self.fresh.append(item.count > 0 and not verdict.anomalous)
        if item.count == 0:
            return
        if verdict.anomalous:
            self._hold(pair)
        else:
            self.accepted.append(pair)
            self.guard.normal()

    def _hold(self, pair: Pair) -> None:
        adopted = self.guard.hold(pair)
        if adopted is not None:  # a lasting new rate: start over from it
            self.accepted.clear()
            self.accepted.extend(adopted)

    def to_state(self) -> dict[str, Any]:
        return {
            "accepted": [list(p) for p in self.accepted],
            "recent": [list(p) for p in self.recent],
            "fresh": list(self.fresh),
            "guard": self.guard.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.accepted = deque(
            ((int(a), int(b)) for a, b in state.get("accepted", [])), maxlen=self.cfg.window
        )
        self.recent = deque(
            ((int(a), int(b)) for a, b in state.get("recent", [])), maxlen=self.recent.maxlen
        )
        self.fresh = deque((bool(f) for f in state.get("fresh", [])), maxlen=self.recent.maxlen)
        self.guard.load_state(state.get("guard", {}), lambda p: (int(p[0]), int(p[1])))
