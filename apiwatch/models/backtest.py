"""Offline replay on the detector code the stream runs: metric series and event files.

Metric series (``apiwatch backtest SERIES.csv``): rows of ``timestamp,value``
at a fixed interval, which is inferred (the median gap between rows). Each
row is judged by a :class:`ValueDetector` and an :class:`AlertLifecycle`
before it is learned, so its score uses only rows before and at it. The
output ``alert`` is 1 on the rows where an alert fires: what would have paged
someone, once per incident. ``anomaly_score`` rates each incident once too,
at the peak of its score, on the row after that peak (a rise over several
rows would otherwise count once per row when the scores are thresholded).

Event files (``apiwatch backtest --events``): :class:`EventReplay` runs RUM
events and synthetic results through the stream's own pieces, the bucket
folder, one :class:`SeriesMonitor` per series and the incident linker, and, when
given an :class:`~apiwatch.models.access.replay.AccessReplay`, the RUM events
through the access-pattern detectors as well.

>>> rows = [(i * 300_000, 1.0 + (i % 5) * 0.01 + (9.0 if i == 400 else 0.0)) for i in range(500)]
>>> result = backtest_series([t for t, _ in rows], [v for _, v in rows])
>>> result.interval_s, int(result.alerts[400]), int(result.alerts.sum())
(300.0, 1, 1)
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import orjson

from apiwatch.models.access.replay import AccessReplay
from apiwatch.models.aggregate import BucketFolder
from apiwatch.models.buckets import (
    BucketSummary,
    SyntheticRun,
    rum_series_key,
    synthetic_series_key,
)
from apiwatch.models.decode import BatchDecoder
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.detectors.value import Point, ValueDetector
from apiwatch.models.events import RumEvent, SyntheticResult, kind_of
from apiwatch.models.lifecycle import AlertLifecycle
from apiwatch.models.linking import IncidentLinker
from apiwatch.models.monitor import Emission, SeriesMonitor

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


# -- event files ------------------------------------------------------------

_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9.eE+]+)')


def max_event_time_s(lines: Iterable[bytes]) -> float | None:
    """Latest ``timestamp`` among raw JSON lines (a cheap scan, before validation)."""
    latest: float | None = None
    for line in lines:
        m = _TIMESTAMP.search(line)
        if m is None:
            continue
        raw = m.group(1)
        try:
            if raw.startswith(b'"'):
                parsed = datetime.fromisoformat(raw[1:-1].decode().replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                t = parsed.timestamp()
            else:
                t = float(raw) / 1000.0
        except ValueError:
            continue  # validation will name the problem with its line number
        if latest is None or t > latest:
            latest = t
    return latest


class BadLine(ValueError):
    """A line of an event file that is not a valid RUM event or synthetic result."""

    def __init__(self, line_no: int, detail: str) -> None:
        super().__init__(f"line {line_no}: {detail}")
        self.line_no = line_no


@dataclass
class ReplayStats:
    lines: int = 0
    rum_events: int = 0
    synthetic_runs: int = 0
    buckets: int = 0
    late_events: int = 0
    alerts: int = 0
    access_alerts: int = 0


class EventReplay:
    """Fold raw event lines into buckets and run every series' monitor, as the stream does.

    Feed chunks of lines with :meth:`feed` (each returns the alert emissions
    it caused, linked across RUM and synthetic), then :meth:`finish`. RUM
    events go through :class:`BucketFolder` in batches (one partition: the
    file is the partition, its line order the offsets); synthetic runs wait
    until the RUM watermark passes them, so both kinds reach detection in
    event-time order, as far as the allowed lateness allows.

    >>> line = ('{"timestamp": %d, "service": "shop", "method": "GET", "path": "/a",'
    ...         ' "status": 200, "duration_ms": 20, "client_ip": "10.0.0.1"}')
    >>> r = EventReplay(DetectionConfig(), bucket_s=10, allowed_lateness_s=5)
    >>> r.feed([(line % (1767225600000 + i * 100)).encode() for i in range(1000)], 1, now_s=2e9)
    []
    >>> r.finish(), r.stats.rum_events, r.stats.buckets
    ([], 1000, 10)
    """

    def __init__(
        self,
        cfg: DetectionConfig,
        bucket_s: float,
        allowed_lateness_s: float,
        max_future_skew_s: float = 300.0,
        samples_per_bucket: int = 5,
        access: AccessReplay | None = None,
    ) -> None:
        """``access`` also replays the RUM events through the access-pattern detectors."""
        self.cfg = cfg
        self.access = access
        self.skew_s = max_future_skew_s
        self.folder = BucketFolder(
            bucket_s, allowed_lateness_s, samples_per_bucket=samples_per_bucket, origin="backtest"
        )
        self.lateness_ms = int(allowed_lateness_s * 1000)
        self.rum = BatchDecoder(RumEvent, max_bytes=1 << 20)
        self.synthetic = BatchDecoder(SyntheticResult, max_bytes=1 << 24)
        self.monitors: dict[str, SeriesMonitor] = {}
        self.pending_runs: list[tuple[int, int, SyntheticRun]] = []  # heap by event time
        self.linker = IncidentLinker()
        self.stats = ReplayStats()

    def feed(self, lines: Sequence[bytes], first_line_no: int, now_s: float) -> list[Emission]:
        """Validate and process one chunk; ``first_line_no`` numbers lines in errors."""
        rum_lines: list[bytes] = []
        rum_no: list[int] = []
        syn_lines: list[bytes] = []
        syn_no: list[int] = []
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped:
                continue
            no = first_line_no + i
            if b'"check_id"' in stripped and b'"steps"' in stripped and _is_synthetic(stripped):
                syn_lines.append(stripped)
                syn_no.append(no)
            else:
                rum_lines.append(stripped)
                rum_no.append(no)
        self.stats.lines += len(lines)
        context = {"now": now_s, "max_future_skew_s": self.skew_s}
        rum = self.rum.decode(rum_lines, context)
        if rum.rejected:
            bad = rum.rejected[0]
            raise BadLine(rum_no[bad.index], f"not a valid RUM event: {bad.detail}")
        syn = self.synthetic.decode(syn_lines, context)
        if syn.rejected:
            bad = syn.rejected[0]
            raise BadLine(syn_no[bad.index], f"not a valid synthetic result: {bad.detail}")
        self._fold(rum.events, rum_no[0] if rum_no else first_line_no)
        for result in syn.events:
            run = SyntheticRun(
                series=synthetic_series_key(result.environment, result.check_id), result=result
            )
            heapq.heappush(self.pending_runs, (result.epoch_ms, self.stats.synthetic_runs, run))
            self.stats.synthetic_runs += 1
        out = self._detect(self.folder.close_ready())
        return out + self._access(self.access.feed(rum.events) if self.access else [])

    def finish(self) -> list[Emission]:
        """Close every open bucket and release every waiting run."""
        out = self._detect(self.folder.close_ready(force=True), release_all=True)
        return out + self._access(self.access.finish() if self.access else [])

    def _access(self, emissions: list[Emission]) -> list[Emission]:
        # Access alerts name a client, not a series: the stream does not link them either.
        self.stats.access_alerts += len(emissions)
        return emissions

    def _fold(self, events: list[RumEvent], offset: int) -> None:
        n = len(events)
        if n == 0:
            return
        keys = [
            rum_series_key(e.environment, e.service, e.method, e.route or e.path) for e in events
        ]
        ts = np.fromiter((e.epoch_ms for e in events), np.int64, n)
        status = np.fromiter((e.status for e in events), np.int64, n)
        duration = np.fromiter((e.duration_ms for e in events), np.float64, n)

        def event_id(i: int) -> str:
            return events[i].event_id or f"line:{offset + i}"

        self.folder.fold(0, keys, ts, status, duration, first_offset=offset, event_id=event_id)
        self.stats.rum_events += n

    def _detect(self, summaries: list[BucketSummary], release_all: bool = False) -> list[Emission]:
        self.stats.buckets += len(summaries)
        wm = self.folder.watermark_ms
        horizon = 2**62 if release_all or wm is None else wm - self.lateness_ms
        items: list[tuple[int, BucketSummary | SyntheticRun]] = [(s.end_ms, s) for s in summaries]
        while self.pending_runs and self.pending_runs[0][0] <= horizon:
            t, _, run = heapq.heappop(self.pending_runs)
            items.append((t, run))
        items.sort(key=lambda pair: pair[0])
        out: list[Emission] = []
        for _, item in items:
            monitor = self.monitors.get(item.series)
            if monitor is None:
                monitor = self.monitors[item.series] = SeriesMonitor(self.cfg, item.series)
            for emission in monitor.observe(item):
                out.extend(self.linker.link(emission))
        self.stats.late_events = self.folder.late_total
        self.stats.alerts += len(out)
        return out


def _is_synthetic(line: bytes) -> bool:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and kind_of(obj) == "synthetic"
