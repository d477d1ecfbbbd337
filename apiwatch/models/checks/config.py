"""Configuration of the synthetic check runner (the ``checks`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ChecksConfig(BaseModel):
    """Where checks are read from, where this runner is, and how results are kept.

    ``location`` labels every result of this runner process, so runners in
    several regions can feed one topic and be told apart. ``max_pending``
    bounds the results kept in memory while Kafka cannot take them; beyond it
    the oldest are dropped and counted (hours of results at usual intervals).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Path("checks")
    location: str = Field("local", min_length=1, max_length=256)
    max_concurrency: int = Field(16, ge=1, le=1024)
    max_pending: int = Field(10_000, ge=1)
    publish_timeout_s: float = Field(
        30.0, gt=0, description="How long `checks once` waits for Kafka to take its results."
    )
    user_agent: str = "apiwatch-synthetics/0.1"
