"""Builders of bucket summaries and synthetic runs for detector tests."""

from __future__ import annotations

import numpy as np

from apiwatch.models.buckets import BucketSummary, SyntheticRun, rum_series_key
from apiwatch.models.events import SyntheticResult
from apiwatch.models.sketch import LogSketch

SERIES = rum_series_key("production", "shop", "GET", "/items/{id}")
T0 = 1_767_225_600_000


def bucket(
    i: int, count: int, errors: int = 0, latencies: np.ndarray | None = None
) -> BucketSummary:
    sketch = LogSketch()
    if latencies is not None and latencies.size:
        sketch.add_many(latencies)
    return BucketSummary(
        series=SERIES,
        labels={},
        start_ms=T0 + i * 10_000,
        width_s=10,
        count=count,
        errors_5xx=errors,
        latency=sketch.to_dict() if count else {},
        sample_event_ids=[f"e{i}"],
    )


def noisy_bucket(
    rng: np.random.Generator, i: int, rate: float = 50, err: float = 0.01, ms: float = 100
) -> BucketSummary:
    n = int(rng.poisson(rate))
    lat = rng.lognormal(np.log(ms), 0.5, n)
    return bucket(i, n, int(rng.binomial(n, err)), lat)


def run(i: int, location: str, ok: bool, ms: float = 80.0, check: str = "c") -> SyntheticRun:
    step = {
        "name": "get",
        "method": "GET",
        "url": "https://shop.example/cart",
        "duration_ms": ms,
        "status_code": 200 if ok else 503,
        "assertions": [
            {"kind": "status", "passed": ok, "expected": 200, "actual": 200 if ok else 503}
        ],
    }
    result = SyntheticResult.model_validate(
        {
            "check_id": check,
            "check_name": check,
            "run_id": f"{i}-{location}",
            "location": location,
            "timestamp": T0 + i * 60_000,
            "status": "passed" if ok else "failed",
            "duration_ms": ms,
            "steps": [step],
            "service": "shop",
        },
        context={"now": 4e9},
    )
    return SyntheticRun(series=f"synthetic|production|{check}", result=result)
