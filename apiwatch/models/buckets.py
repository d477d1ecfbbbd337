"""What flows from ingest to detection: one summary per series per event-time bucket.

RUM series are (environment, service, method, route). A :class:`BucketSummary`
holds the request count, 5xx and 4xx counts, a latency sketch, sample event ids
and the number of late events the series had since its previous summary.
Synthetic results are few (one per check run and location), so they are not
bucketed on the way: each validated run is forwarded as a :class:`SyntheticRun`.
Both travel on the buckets topic inside :class:`DetectMessage`, keyed by
:attr:`series`, so every summary of one series reaches the same detect worker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apiwatch.models.events import SyntheticResult
from apiwatch.models.sketch import LogSketch

SERIES_SEP = "|"


def rum_series_key(environment: str, service: str, method: str, route: str) -> str:
    """>>> rum_series_key("production", "shop", "GET", "/users/{id}")
    'rum|production|shop|GET|/users/{id}'
    """
    return SERIES_SEP.join(("rum", environment, service, method, route))


def synthetic_series_key(environment: str, check_id: str) -> str:
    return SERIES_SEP.join(("synthetic", environment, check_id))


class SeriesKind(StrEnum):
    RUM = "rum"
    SYNTHETIC = "synthetic"


class BucketSummary(BaseModel):
    """Aggregates of one RUM series over ``[start_ms, start_ms + width_s * 1000)``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["rum_bucket"] = "rum_bucket"
    series: str
    labels: dict[str, str]
    start_ms: int
    width_s: float
    count: int = Field(ge=0)
    errors_5xx: int = Field(0, ge=0)
    errors_4xx: int = Field(0, ge=0)
    latency: dict[str, Any] = Field(default_factory=dict, description="LogSketch.to_dict()")
    sample_event_ids: list[str] = Field(default_factory=list)
    late: int = Field(
        0, ge=0, description="Events for this series that came after their bucket closed."
    )
    watermark_ms: int = 0
    origin: str = ""

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.width_s * 1000)

    def sketch(self) -> LogSketch:
        return LogSketch.from_dict(self.latency) if self.latency else LogSketch()

    @property
    def error_rate(self) -> float:
        return self.errors_5xx / self.count if self.count else 0.0


class SyntheticRun(BaseModel):
    """One validated synthetic result on its way to detection."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["synthetic_run"] = "synthetic_run"
    series: str
    result: SyntheticResult
    origin: str = ""


class DetectMessage(BaseModel):
    """Envelope of the buckets topic: a RUM bucket summary or a synthetic run."""

    model_config = ConfigDict(extra="forbid")

    body: BucketSummary | SyntheticRun = Field(discriminator="type")
