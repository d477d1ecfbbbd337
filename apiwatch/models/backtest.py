"""Offline replay on the detector code the stream runs: metric series and event files.

Metric series (``apiwatch backtest SERIES.csv``): rows of ``timestamp,value``
at a fixed interval, which is inferred (the median gap between rows). Each
row is judged by a :class:`ValueDetector` and an :class:`AlertLifecycle`
before it is learned, so its score uses only rows before and at it. The
output ``alert`` is 1 on the rows where an alert fires: what would have paged
someone, once per incident.

>>> rows = [(i * 300_000, 1.0 + (i % 5) * 0.01 + (9.0 if i == 400 else 0.0)) for i in range(500)]
>>> result = backtest_series([t for t, _ in rows], [v for _, v in rows])
>>> result.interval_s, int(result.alerts[400]), int(result.alerts.sum())
(300.0, 1, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.detectors.value import Point, ValueDetector
from apiwatch.models.lifecycle import AlertLifecycle

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SeriesResult:
    interval_s: float
    scores: npt.NDArray[np.float64]
    alerts: npt.NDArray[np.int8]


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds from RFC 3339 / ISO 8601 text (naive = UTC) or epoch s or ms.

    >>> parse_timestamp("2014-02-14 14:30:00"), parse_timestamp("1392388200000")
    (1392388200000, 1392388200000)
    """
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return round(parsed.timestamp() * 1000)
    # Ten-digit numbers are epoch seconds, thirteen-digit ones epoch milliseconds.
    return int(number * 1000) if abs(number) < 1e11 else int(number)


def read_series(lines: Iterable[str]) -> tuple[list[str], list[int], list[float]]:
    """Parse a ``timestamp,value`` CSV; raise ValueError naming the first bad line."""
    it = iter(lines)
    header = next(it, "").strip().lower().replace(" ", "")
    if header.split(",")[:2] != ["timestamp", "value"]:
        raise ValueError(f"line 1: expected the header 'timestamp,value', got {header[:60]!r}")
    stamps: list[str] = []
    times: list[int] = []
    values: list[float] = []
    for n, line in enumerate(it, start=2):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split(",")
        if len(parts) < 2:
            raise ValueError(f"line {n}: expected 'timestamp,value', got {line.strip()[:60]!r}")
        try:
            t = parse_timestamp(parts[0])
        except ValueError:
            raise ValueError(f"line {n}: bad timestamp {parts[0][:40]!r}") from None
        try:
            v = float(parts[1])
        except ValueError:
            raise ValueError(f"line {n}: bad value {parts[1][:40]!r}") from None
        if not np.isfinite(v):
            raise ValueError(f"line {n}: value must be a finite number, got {parts[1][:40]!r}")
        stamps.append(parts[0])
        times.append(t)
        values.append(v)
    if not times:
        raise ValueError("no data rows after the header")
    return stamps, times, values


def infer_interval_s(times_ms: Sequence[int]) -> float:
    """The series' sampling interval: the median positive gap (60 s if it cannot tell).

    >>> infer_interval_s([0, 300_000, 600_000, 600_000, 1_200_000])
    300.0
    """
    gaps = np.diff(np.asarray(times_ms, dtype=np.int64))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) / 1000.0 if gaps.size else 60.0


def backtest_series(
    times_ms: Sequence[int],
    values: Sequence[float],
    cfg: DetectionConfig | None = None,
    progress: Progress | None = None,
) -> SeriesResult:
    """Score and alert every row, causally, with the configured value detector."""
    cfg = cfg or DetectionConfig()
    interval = infer_interval_s(times_ms)
    detector = ValueDetector(cfg.series, interval)
    lifecycle = AlertLifecycle(detector.lifecycle or cfg.lifecycle)
    n = len(values)
    scores = np.zeros(n)
    alerts = np.zeros(n, dtype=np.int8)
    for i, (t, v) in enumerate(zip(times_ms, values, strict=True)):
        point = Point(int(t), float(v))
        verdict = detector.judge(point)
        scores[i] = verdict.score
        if lifecycle.step(verdict.anomalous, int(t), verdict.score) == "firing":
            alerts[i] = 1
        detector.learn(point, verdict)
        if progress is not None and i % 1000 == 999:
            progress(1000)
    return SeriesResult(interval, scores, alerts)
