"""Detection settings: pure value objects shared by the stream and the backtest.

They live in ``models/`` (not in ``settings.py``) because detectors are built
from them offline too, with no environment or file involved.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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


class LatencyConfig(_Strict):
    """Latency spike: a bucket's tail latency above the baseline's upper bound."""

    enabled: bool = True
    quantile: float = Field(0.95, gt=0.5, lt=1.0)
    min_samples: int = Field(20, ge=1, description="Requests in a bucket needed to judge it.")
    baseline: BaselineConfig = BaselineConfig()


class LifecycleConfig(_Strict):
    """When an alert fires, updates and resolves (hysteresis and cooldown)."""

    fire_m: int = Field(2, ge=1, description="Fire after fire_m anomalous buckets ...")
    fire_n: int = Field(3, ge=1, description="... among the last fire_n judged buckets.")
    resolve_after: int = Field(3, ge=1, description="Consecutive normal buckets to resolve.")
    cooldown_s: float = Field(300.0, ge=0, description="After resolving, no refire for this long.")
    update_interval_s: float = Field(
        300.0, ge=0, description="At most one `updated` per interval while firing; 0 = never."
    )


class DetectionConfig(_Strict):
    latency: LatencyConfig = LatencyConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
