"""Detectors, and the registry of which ones watch which kind of series.

Adding a detector: write one module with one :class:`BucketDetector` subclass,
then add it to :func:`detectors_for` below.
"""

from __future__ import annotations

from typing import Any

from apiwatch.models.buckets import SeriesKind
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict
from apiwatch.models.detectors.latency import LatencySpike

__all__ = ["BucketDetector", "LatencySpike", "Verdict", "detectors_for"]


def detectors_for(kind: SeriesKind, cfg: DetectionConfig) -> list[BucketDetector[Any]]:
    """Fresh detectors for one series of ``kind``, in a fixed order (state is by position)."""
    if kind is SeriesKind.RUM:
        out: list[BucketDetector[Any]] = []
        if cfg.latency.enabled:
            out.append(LatencySpike(cfg.latency))
        return out
    return []
