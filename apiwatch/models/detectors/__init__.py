"""Detectors, and the registry of which ones watch which kind of series.

Adding a detector: write one module with one :class:`BucketDetector` subclass,
then add it to :func:`detectors_for` below.
"""

from __future__ import annotations

from typing import Any

from apiwatch.models.buckets import SeriesKind
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict
from apiwatch.models.detectors.error_surge import ErrorSurge
from apiwatch.models.detectors.latency import LatencySpike
from apiwatch.models.detectors.slo import SloBurn
from apiwatch.models.detectors.synthetic import SyntheticFailure, SyntheticLatency
from apiwatch.models.detectors.traffic import TrafficAnomaly

__all__ = [
    "BucketDetector",
    "ErrorSurge",
    "LatencySpike",
    "SloBurn",
    "SyntheticFailure",
    "SyntheticLatency",
    "TrafficAnomaly",
    "Verdict",
    "detectors_for",
]


def detectors_for(
    kind: SeriesKind, cfg: DetectionConfig, labels: dict[str, str] | None = None
) -> list[BucketDetector[Any]]:
    """Fresh detectors for one series of ``kind``, in a fixed order.

    ``labels`` select the SLO objective of a RUM series, if one matches.

    >>> [d.kind.value for d in detectors_for(SeriesKind.SYNTHETIC, DetectionConfig())]
    ['synthetic_failure', 'synthetic_latency']
    """
    out: list[BucketDetector[Any]] = []
    if kind is SeriesKind.RUM:
        if cfg.latency.enabled:
            out.append(LatencySpike(cfg.latency))
        if cfg.error_surge.enabled:
            out.append(ErrorSurge(cfg.error_surge))
        if cfg.traffic.enabled:
            out.append(TrafficAnomaly(cfg.traffic))
        objective = cfg.slo.objective_for(labels or {})
        if objective is not None:
            out.append(SloBurn(cfg.slo, objective))
        return out
    if cfg.synthetic_failure.enabled:
        out.append(SyntheticFailure(cfg.synthetic_failure))
    if cfg.synthetic_latency.enabled:
        out.append(SyntheticLatency(cfg.synthetic_latency))
    return out
