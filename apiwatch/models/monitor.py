"""Everything that watches one series: its detectors, and one alert lifecycle each.

:class:`SeriesMonitor` is what the stream keeps per series in a changelog-backed
table and what the backtest keeps in a dict: the same object, the same code.
It ignores a bucket it has already seen (a replay after a crash re-emits
partial buckets; the first complete one wins), judges each new input with
every detector, advances the lifecycles and returns alert emissions with
deterministic event ids, so a replayed emission carries the same idempotency key.

>>> from apiwatch.models.detection_config import DetectionConfig
>>> m = SeriesMonitor(DetectionConfig(), "rum|production|shop|GET|/a")
>>> m.kind.value, m.labels["route"]
('rum', '/a')
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apiwatch.models.alerts import (
    Alert,
    AlertEvent,
    AlertStatus,
    Evidence,
    Source,
    Transition,
    fingerprint,
)
from apiwatch.models.buckets import SERIES_SEP, BucketSummary, SeriesKind, SyntheticRun
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.detectors import BucketDetector, Verdict, detectors_for
from apiwatch.models.lifecycle import AlertLifecycle

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Emission:
    transition: Transition
    alert: Alert
    event_id: str
    time: datetime

    def event(self, source: str) -> AlertEvent:
        return AlertEvent.emit(
            self.alert,
            transition=self.transition,
            source=source,
            time=self.time,
            event_id=self.event_id,
        )


def labels_of(series: str) -> tuple[SeriesKind, dict[str, str]]:
    parts = series.split(SERIES_SEP)
    kind = SeriesKind(parts[0])
    if kind is SeriesKind.RUM:
        _, env, service, method, route = series.split(SERIES_SEP, 4)
        return kind, {"environment": env, "service": service, "method": method, "route": route}
    _, env, check = series.split(SERIES_SEP, 2)
    return kind, {"environment": env, "check": check}


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


class SeriesMonitor:
    """Detectors and lifecycles of one series, serialisable to a JSON-able dict."""

    def __init__(self, cfg: DetectionConfig, series: str) -> None:
        self.cfg = cfg
        self.series = series
        self.kind, self.labels = labels_of(series)
        self.detectors: list[BucketDetector[Any]] = detectors_for(self.kind, cfg, self.labels)
        self.lifecycles = [AlertLifecycle(d.lifecycle or cfg.lifecycle) for d in self.detectors]
        self.last_verdicts: list[Verdict | None] = [None for _ in self.detectors]
        self.last_start_ms: int | None = None
        self.recent_runs: deque[str] = deque(maxlen=256)
        self.buckets_seen = 0
        self.duplicates = 0

    def observe(self, item: BucketSummary | SyntheticRun) -> list[Emission]:
        """Judge one bucket summary (or synthetic run) and return alert transitions."""
        if isinstance(item, BucketSummary):
            if self.last_start_ms is not None and item.start_ms <= self.last_start_ms:
                self.duplicates += 1
                return []
            self.last_start_ms = item.start_ms
            t_ms = item.end_ms
            source: Source = "rum"
        else:
            if item.result.run_id in self.recent_runs:
                self.duplicates += 1
                return []
            self.recent_runs.append(item.result.run_id)
            t_ms = item.result.epoch_ms
            source = "synthetic"
        self.buckets_seen += 1
        out: list[Emission] = []
        for i, detector in enumerate(self.detectors):
            verdict = detector.judge(item)
            lifecycle = self.lifecycles[i]
            started = lifecycle.started_ms
            transition = lifecycle.step(verdict.anomalous, t_ms, verdict.score)
            detector.learn(item, verdict)
            if verdict.anomalous is not None:
                self.last_verdicts[i] = verdict
            if transition is None:
                continue
            shown = verdict if verdict.anomalous is not None else self.last_verdicts[i]
            started_ms = lifecycle.started_ms if transition != "resolved" else started
            out.append(
                self._emission(detector, transition, shown or verdict, t_ms, started_ms, source)
            )
        return out

    def _emission(
        self,
        detector: BucketDetector[Any],
        transition: Transition,
        verdict: Verdict,
        t_ms: int,
        started_ms: int | None,
        source: Source,
    ) -> Emission:
        fp = fingerprint(detector.kind.value, self.labels)
        resolved = transition == "resolved"
        summary = verdict.summary or detector.kind.value.replace("_", " ")
        where = self._where()
        alert = Alert(
            fingerprint=fp,
            kind=detector.kind,
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            severity=verdict.severity,
            summary=(f"Resolved: {where}" if resolved else f"{where}: {summary}"),
            labels=dict(self.labels),
            observed=verdict.observed,
            expected=verdict.expected,
            score=verdict.score,
            evidence=Evidence(
                sample_event_ids=list(verdict.sample_event_ids),
                details=dict(verdict.details),
            ),
            started_at=_ms_to_dt(started_ms if started_ms is not None else t_ms),
            resolved_at=_ms_to_dt(t_ms) if resolved else None,
            sources=[source],
        )
        material = f"{fp}|{transition}|{t_ms}".encode()
        event_id = hashlib.blake2b(material, digest_size=16).hexdigest()
        return Emission(transition, alert, event_id, _ms_to_dt(t_ms))

    def _where(self) -> str:
        lb = self.labels
        if self.kind is SeriesKind.RUM:
            return f"{lb['method']} {lb['route']} on {lb['service']} ({lb['environment']})"
        return f"check {lb['check']} ({lb['environment']})"

    @property
    def firing(self) -> list[str]:
        return [
            d.kind.value for d, lc in zip(self.detectors, self.lifecycles, strict=True) if lc.firing
        ]

    def to_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "series": self.series,
            "last_start_ms": self.last_start_ms,
            "recent_runs": list(self.recent_runs),
            "buckets_seen": self.buckets_seen,
            "detectors": [
                {"kind": d.kind.value, "state": d.to_state(), "lifecycle": lc.to_state()}
                for d, lc in zip(self.detectors, self.lifecycles, strict=True)
            ],
        }

    @classmethod
    def from_state(cls, cfg: DetectionConfig, state: dict[str, Any]) -> SeriesMonitor:
        m = cls(cfg, state["series"])
        m.last_start_ms = state.get("last_start_ms")
        m.recent_runs.extend(state.get("recent_runs", []))
        m.buckets_seen = int(state.get("buckets_seen", 0))
        saved = {d["kind"]: d for d in state.get("detectors", [])}
        for detector, lifecycle in zip(m.detectors, m.lifecycles, strict=True):
            entry = saved.get(detector.kind.value)
            if entry is not None:
                detector.load_state(entry.get("state", {}))
                lifecycle.load_state(entry.get("lifecycle", {}))
        return m
