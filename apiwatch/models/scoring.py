"""Score alerts against injected ground truth: detected, time to detect, false alerts.

An alert detects an incident when its kind is one that answers the incident's
kind (:data:`~apiwatch.models.simulation.DETECTED_BY`), every label of the
incident's target matches the alert's labels, and it fired between the
incident's start and its end plus a grace period. A firing alert that detects
no incident is a false alert.

>>> from apiwatch.models.simulation import Truth
>>> t = Truth("latency_spike", {"service": "shop"}, 1_000, 60_000, 4.0)
>>> r = score([FiredAlert("latency_spike", {"service": "shop", "route": "/a"}, 21_000),
...            FiredAlert("latency_spike", {"service": "auth"}, 30_000)], [t])
>>> r.detected, r.false_alerts, r.ttd_s
(1, 1, [20.0])
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.simulation import DETECTED_BY, Truth

DEFAULT_GRACE_MS = 300_000


@dataclass(frozen=True, slots=True)
class FiredAlert:
    kind: str
    labels: dict[str, str]
    time_ms: int

    @classmethod
    def from_event(cls, ev: AlertEvent) -> FiredAlert:
        return cls(ev.data.kind.value, ev.data.labels, int(ev.time.timestamp() * 1000))


@dataclass
class ScoreReport:
    injected: int = 0
    detected: int = 0
    false_alerts: int = 0
    ttd_s: list[float] = field(default_factory=list)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    missed: list[Truth] = field(default_factory=list)
    false: list[FiredAlert] = field(default_factory=list)


def matches(alert: FiredAlert, truth: Truth, grace_ms: int = DEFAULT_GRACE_MS) -> bool:
    if alert.kind not in DETECTED_BY.get(truth.kind, (truth.kind,)):
        return False
    if any(alert.labels.get(k) != v for k, v in truth.labels.items()):
        return False
    return truth.start_ms <= alert.time_ms <= truth.end_ms + grace_ms


def score(
    alerts: list[FiredAlert], truths: list[Truth], grace_ms: int = DEFAULT_GRACE_MS
) -> ScoreReport:
    report = ScoreReport(injected=len(truths))
    used: set[int] = set()
    kinds: Counter[str] = Counter(t.kind for t in truths)
    found: Counter[str] = Counter()
    for t in truths:
        hits = [i for i, a in enumerate(alerts) if matches(a, t, grace_ms)]
        if hits:
            report.detected += 1
            found[t.kind] += 1
            first = min(alerts[i].time_ms for i in hits)
            report.ttd_s.append((first - t.start_ms) / 1000)
            used.update(hits)
        else:
            report.missed.append(t)
    report.false = [a for i, a in enumerate(alerts) if i not in used]
    report.false_alerts = len(report.false)
    report.by_kind = {k: {"injected": n, "detected": found[k]} for k, n in kinds.items()}
    return report
