"""Detection settings: pure value objects shared by the stream and the backtest.

They live in ``models/`` (not in ``settings.py``) because detectors are built
from them offline too, with no environment or file involved. Windows and
histories are counted in buckets (default 10 s) for RUM detectors and in runs
for synthetic ones; the defaults are mirrored in ``config/apiwatch.yaml``.
"""

from __future__ import annotations

import fnmatch

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaselineConfig(_Strict):
    """Rolling robust baseline of one bucket statistic."""

    window: int = Field(360, ge=8, description="Buckets of history kept (360 x 10 s = 1 h).")
    warmup: int = Field(30, ge=3, description="Buckets needed before the baseline may alert.")
    mad_k: float = Field(6.0, gt=0, description="Upper bound = median + mad_k * 1.4826 * MAD.")
    min_ratio: float = Field(
        1.5, ge=1.0, description="Upper bound is at least min_ratio x the median."
    )
    relearn_after: int = Field(
        2160,
        ge=0,
        description="Anomalous buckets (net) after which a persisting level is adopted as the "
        "new normal (2160 x 10 s = 6 h); 0 = never.",
    )
    seasonal_weight: float = Field(
        0.5, ge=0, le=1, description="Weight of the daily/weekly profile once known."
    )

    @model_validator(mode="after")
    def _warmup_fits(self) -> BaselineConfig:
        if self.warmup > self.window:
            raise ValueError(f"warmup ({self.warmup}) cannot exceed window ({self.window})")
        return self


class LifecycleConfig(_Strict):
    """When an alert fires, updates and resolves (hysteresis and cooldown)."""

    fire_m: int = Field(2, ge=1, description="Fire after fire_m anomalous buckets ...")
    fire_n: int = Field(3, ge=1, description="... among the last fire_n judged buckets.")
    resolve_after: int = Field(3, ge=1, description="Consecutive normal buckets to resolve.")
    cooldown_s: float = Field(300.0, ge=0, description="After resolving, no refire for this long.")
    update_interval_s: float = Field(
        300.0, ge=0, description="At most one `updated` per interval while firing; 0 = never."
    )


class LatencyConfig(_Strict):
    """Latency spike: a bucket's tail latency above the baseline's upper bound."""

    enabled: bool = True
    quantile: float = Field(0.95, gt=0.5, lt=1.0)
    min_samples: int = Field(20, ge=1, description="Requests needed to judge a bucket ...")
    pool_buckets: int = Field(
        12, ge=1, description="... pooling up to this many recent buckets on a quiet endpoint."
    )
    alpha: float = Field(
        1e-5,
        gt=0,
        lt=1,
        description="Tail probability, given the last window's normal requests, of as many "
        "requests slower than the usual quantile (or than the upper bound); below it, a "
        "quantile past the bound alerts.",
    )
    baseline: BaselineConfig = BaselineConfig()


class ErrorSurgeConfig(_Strict):
    """Error surge: the 5xx rate above the baseline rate, by a binomial test."""

    enabled: bool = True
    window_buckets: int = Field(
        6, ge=1, description="Recent buckets pooled for the test (low volume needs several)."
    )
    long_window_buckets: int = Field(
        30,
        ge=0,
        description="A longer window also tested (5 min), for a modest surge on a quiet "
        "endpoint; it alerts only while the short window's rate is still up. 0: off.",
    )
    min_requests: int = Field(20, ge=1, description="Requests in the pooled window to judge it.")
    min_errors: int = Field(4, ge=1, description="5xx in the pooled window needed to alert.")
    min_increase: float = Field(
        0.02, ge=0, le=1, description="Rate must exceed the baseline by at least this much."
    )
    alpha: float = Field(
        1e-5,
        gt=0,
        lt=1,
        description="Binomial tail probability to alert (tested every bucket: 1e-5 x 8,640 "
        "ten-second windows is under 0.1 false alert a day per endpoint).",
    )
    baseline_floor: float = Field(
        0.002, ge=0, lt=1, description="Baseline rate never assumed below this."
    )
    window: int = Field(360, ge=8, description="Normal buckets the baseline rate pools.")
    warmup: int = Field(30, ge=1, description="Normal buckets before alerting.")
    relearn_after: int = Field(2160, ge=0, description="As in baseline.relearn_after.")

    @model_validator(mode="after")
    def _long_window_is_longer(self) -> ErrorSurgeConfig:
        if 0 < self.long_window_buckets <= self.window_buckets:
            raise ValueError(
                f"long_window_buckets ({self.long_window_buckets}) must be 0 (off) or more than "
                f"window_buckets ({self.window_buckets})"
            )
        return self


class TrafficConfig(_Strict):
    """Traffic anomaly: volume collapsing (or going silent) or surging against expectation."""

    enabled: bool = True
    min_expected: float = Field(
        5.0, ge=0, description="Expected requests per bucket below which a drop is not judged."
    )
    max_drop: float = Field(
        0.3, ge=0, le=1, description="A collapse is a count below max_drop x expected."
    )
    surge_ratio: float = Field(4.0, gt=1, description="A surge is a count above ratio x expected.")
    alpha: float = Field(1e-4, gt=0, lt=1, description="Poisson tail probability to alert.")
    baseline: BaselineConfig = BaselineConfig(warmup=60, mad_k=5.0, min_ratio=1.0)
    lifecycle: LifecycleConfig = LifecycleConfig(fire_m=3, fire_n=4)


class SyntheticFailureConfig(_Strict):
    """Synthetic failure: a check failing from several locations, or repeatedly from one."""

    enabled: bool = True
    failing_locations: int = Field(
        2, ge=1, description="Locations whose latest run failed (N of M) to alert."
    )
    consecutive_failures: int = Field(
        3, ge=1, description="Failed runs in a row from one location to alert."
    )
    stale_s: float = Field(
        900.0, gt=0, description="A location's last run older than this does not count."
    )
    lifecycle: LifecycleConfig = LifecycleConfig(fire_m=1, fire_n=1, resolve_after=2)


class SyntheticLatencyConfig(_Strict):
    """Synthetic step latency against its own baseline per (step, location)."""

    enabled: bool = True
    baseline: BaselineConfig = BaselineConfig(
        window=60, warmup=10, mad_k=6.0, min_ratio=2.0, relearn_after=120
    )
    max_series: int = Field(64, ge=1, description="(step, location) baselines kept per check.")


class BurnWindow(_Strict):
    """One multiwindow rule: both windows must burn faster than ``burn_rate``."""

    long_s: float = Field(gt=0)
    short_s: float = Field(gt=0)
    burn_rate: float = Field(gt=0)
    severity: str = "critical"


class LatencyObjective(_Strict):
    threshold_ms: float = Field(gt=0, description="A request slower than this is bad.")
    target: float = Field(gt=0, lt=1, description="Fraction of requests that must be faster.")


class SloObjective(_Strict):
    """An SLO for the RUM series whose labels match (shell-style patterns)."""

    name: str
    service: str = "*"
    environment: str = "*"
    method: str = "*"
    route: str = "*"
    availability: float | None = Field(
        None, gt=0, lt=1, description="Fraction of requests without a 5xx."
    )
    latency: LatencyObjective | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        return all(
            fnmatch.fnmatchcase(labels.get(key, ""), getattr(self, key))
            for key in ("service", "environment", "method", "route")
        )


class SloConfig(_Strict):
    """Multiwindow, multi-burn-rate alerting (Google SRE workbook, chapter 5)."""

    objectives: list[SloObjective] = Field(default_factory=list)
    windows: list[BurnWindow] = Field(
        default_factory=lambda: [
            BurnWindow(long_s=3600, short_s=300, burn_rate=14.4, severity="critical"),
            BurnWindow(long_s=21600, short_s=1800, burn_rate=6.0, severity="error"),
        ]
    )
    slot_s: float = Field(60.0, gt=0, description="Resolution of the burn windows.")
    min_requests: int = Field(10, ge=1, description="Requests in a short window to judge it.")
    lifecycle: LifecycleConfig = LifecycleConfig(fire_m=1, fire_n=1, resolve_after=6)

    def objective_for(self, labels: dict[str, str]) -> SloObjective | None:
        return next((o for o in self.objectives if o.matches(labels)), None)


class ValueSeriesConfig(_Strict):
    """The univariate detector ``apiwatch backtest SERIES.csv`` runs (one value per row)."""

    window_s: float = Field(
        2 * 86400.0, gt=0, description="Rolling window of the residuals' median and MAD."
    )
    history_s: float = Field(
        3.5 * 86400, gt=0, description="Past residuals whose tail a new one is compared with."
    )
    min_points: int = Field(30, ge=5)
    max_points: int = Field(1000, ge=50, description="Cap on rows kept for any window.")
    season_s: float = Field(
        86400.0, ge=0, description="Seasonal period compared against; 0 = none."
    )
    seasons: int = Field(3, ge=1, description="Past periods whose median is the seasonal guess.")
    short_s: float = Field(
        3600.0, gt=0, description="Span whose mean surprise the anomaly likelihood judges."
    )
    pattern_bins: int = Field(
        12,
        ge=0,
        le=64,
        description="Quantile symbols of the sequence model that sees an ordinary value in an "
        "unusual place; 0 = no sequence model.",
    )
    pattern_order: int = Field(
        2, ge=0, le=4, description="Longest context (rows) the sequence model predicts from."
    )

    @model_validator(mode="after")
    def _pattern_bins_usable(self) -> ValueSeriesConfig:
        if self.pattern_bins == 1:
            raise ValueError("pattern_bins must be 0 (no sequence model) or at least 2")
        return self

    refractory_s: float = Field(
        43200.0, ge=0, description="A score must beat everything in this past span to count fully."
    )
    alert_score: float = Field(
        0.4, gt=0, lt=1, description="Score -log10(p)/10 at which a row is anomalous (0.4: p=1e-4)."
    )
    lifecycle: LifecycleConfig = LifecycleConfig(
        fire_m=1, fire_n=1, resolve_after=1, cooldown_s=0.0, update_interval_s=0.0
    )


class DetectionConfig(_Strict):
    latency: LatencyConfig = LatencyConfig()
    error_surge: ErrorSurgeConfig = ErrorSurgeConfig()
    traffic: TrafficConfig = TrafficConfig()
    synthetic_failure: SyntheticFailureConfig = SyntheticFailureConfig()
    synthetic_latency: SyntheticLatencyConfig = SyntheticLatencyConfig()
    slo: SloConfig = SloConfig()
    series: ValueSeriesConfig = ValueSeriesConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
