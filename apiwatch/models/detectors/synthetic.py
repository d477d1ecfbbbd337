"""Synthetic checks: failing runs, and step latency against its own baseline.

One series holds every run of one check, from all its locations, so the
failure detector sees them side by side: a check failing from ``N`` locations
at once (their latest runs, if recent) is an outage, not a flaky probe; one
location failing ``K`` runs in a row is an outage seen from there. The
evidence lists the failed assertions, errors and status codes.

The latency detector keeps one robust baseline per (step, location), since a
probe in Sydney is not slow for being slower than one in Frankfurt.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.buckets import SERIES_SEP, SyntheticRun
>>> from apiwatch.models.events import SyntheticResult
>>> def run(i, loc, ok):
...     step = {"name": "get", "method": "GET", "url": "https://x/a", "duration_ms": 80,
...             "status_code": 200 if ok else 503,
...             "assertions": [{"kind": "status", "passed": ok, "expected": 200,
...                             "actual": 200 if ok else 503}]}
...     r = SyntheticResult.model_validate({"check_id": "c", "check_name": "c",
...         "run_id": f"{i}{loc}", "location": loc, "timestamp": 1767225600000 + i * 60_000,
...         "status": "passed" if ok else "failed", "duration_ms": 80, "steps": [step]})
...     return SyntheticRun(series="synthetic|production|c", result=r)
>>> d = SyntheticFailure(SyntheticFailureConfig())
>>> for item in [run(0, "fra", True), run(0, "syd", True), run(1, "fra", False)]:
...     v = d.judge(item); d.learn(item, v)
>>> v.anomalous, d.judge(run(1, "syd", False)).anomalous
(False, True)
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity
from apiwatch.models.baseline import RobustBaseline
from apiwatch.models.buckets import SERIES_SEP, SyntheticRun
from apiwatch.models.detection_config import SyntheticFailureConfig, SyntheticLatencyConfig
from apiwatch.models.detectors.base import BucketDetector, Verdict, bound_score, rolling_baseline
from apiwatch.models.events import SyntheticResult


def endpoint_key(environment: str, service: str, method: str, route: str) -> str:
    """Identity of an API endpoint across RUM and synthetic alerts (see models/linking.py)."""
    return SERIES_SEP.join((environment, service, method, route))


def step_endpoints(result: SyntheticResult, names: set[str] | None = None) -> list[str]:
    """Endpoints the (named) steps of a run call; empty when the check names no service."""
    if result.service is None:
        return []
    return sorted(
        {
            endpoint_key(result.environment, result.service, s.method, s.route or "/")
            for s in result.steps
            if names is None or s.name in names
        }
    )


def failure_facts(result: SyntheticResult) -> list[dict[str, Any]]:
    """What went wrong in a run, step by step: status, error, failed assertions."""
    facts: list[dict[str, Any]] = []
    for step in result.steps:
        failed = [
            {"kind": a.kind, "expected": a.expected, "actual": a.actual, "message": a.message}
            for a in step.assertions
            if not a.passed
        ]
        if failed or step.error is not None:
            facts.append(
                {
                    "step": step.name,
                    "status_code": step.status_code,
                    "error": step.error,
                    "failed_assertions": failed,
                }
            )
    return facts


class SyntheticFailure(BucketDetector[SyntheticRun]):
    """Flags a check failing from N locations at once, or K runs in a row from one.

    Parameters
    ----------
    cfg
        N (failing locations), K (consecutive failures), staleness of a location's run.
    """

    kind: ClassVar[AlertKind] = AlertKind.SYNTHETIC_FAILURE

    def __init__(self, cfg: SyntheticFailureConfig) -> None:
        self.cfg = cfg
        self.lifecycle = cfg.lifecycle
        # location -> [time of latest run (ms), consecutive failures up to it]
        self.locations: dict[str, list[int]] = {}

    def _after(self, result: SyntheticResult) -> dict[str, list[int]]:
        """Per-location state as it would be once ``result`` is counted."""
        state = {loc: list(v) for loc, v in self.locations.items()}
        t = result.epoch_ms
        prev = state.get(result.location, [t, 0])
        if t >= prev[0]:
            state[result.location] = [t, prev[1] + 1 if result.failed else 0]
        return state

    def judge(self, item: SyntheticRun) -> Verdict:
        cfg = self.cfg
        result = item.result
        state = self._after(result)
        t = result.epoch_ms
        recent = {loc: v for loc, v in state.items() if t - v[0] <= cfg.stale_s * 1000}
        failing = sorted(loc for loc, v in recent.items() if v[1] > 0)
        streak = state[result.location][1] if result.location in state else 0
        needed = min(cfg.failing_locations, len(recent))
        many = len(failing) >= max(needed, 1) and len(recent) >= min(2, cfg.failing_locations)
        anomalous = result.failed and (many or streak >= cfg.consecutive_failures)
        facts = failure_facts(result)
        severity = Severity.CRITICAL if len(failing) >= 2 or len(recent) == 1 else Severity.ERROR
        return Verdict(
            anomalous=anomalous,
            score=len(failing) / len(recent) if recent else 0.0,
            observed=Observed(
                value=len(failing), unit="locations", window_s=cfg.stale_s, sample_size=len(recent)
            ),
            expected=Expected(value=0.0, lower=0.0, upper=float(needed - 1)),
            summary=(
                f"failing from {len(failing)} of {len(recent)} locations "
                f"({', '.join(failing)}); {result.location}: {streak} failed runs in a row"
            ),
            severity=severity,
            details={
                "status": result.status.value,
                "location": result.location,
                "failing_locations": failing,
                "consecutive_failures": streak,
                "failures": facts,
                "endpoints": step_endpoints(result, {f["step"] for f in facts} or None),
            },
            sample_event_ids=(result.run_id,),
        )

    def learn(self, item: SyntheticRun, verdict: Verdict) -> None:
        self.locations = self._after(item.result)

    def to_state(self) -> dict[str, Any]:
        return {"locations": self.locations}

    def load_state(self, state: dict[str, Any]) -> None:
        self.locations = {k: [int(v[0]), int(v[1])] for k, v in state.get("locations", {}).items()}


class SyntheticLatency(BucketDetector[SyntheticRun]):
    """Flags a run whose step took far longer than that step usually takes from there.

    Parameters
    ----------
    cfg
        Baseline settings per (step, location) and how many such baselines to keep.
    """

    kind: ClassVar[AlertKind] = AlertKind.SYNTHETIC_LATENCY

    def __init__(self, cfg: SyntheticLatencyConfig) -> None:
        self.cfg = cfg
        self.baselines: dict[str, RobustBaseline] = {}
        self.order: deque[str] = deque()  # least recently used first

    @staticmethod
    def _timed_steps(result: SyntheticResult) -> list[tuple[str, float]]:
        # A step with no response (timeout, connection error) is the failure
        # detector's business; its duration says nothing about latency.
        return [
            (f"{s.name}|{result.location}", s.duration_ms)
            for s in result.steps
            if s.status_code is not None and s.error is None
        ]

    def judge(self, item: SyntheticRun) -> Verdict:
        worst: tuple[float, str, float, Expected] | None = None
        for key, ms in self._timed_steps(item.result):
            baseline = self.baselines.get(key)
            expected = baseline.expected() if baseline is not None else None
            if expected is None:
                continue
            score = bound_score(ms, expected.value, expected.upper)
            if worst is None or score > worst[0]:
                worst = (score, key, ms, expected)
        if worst is None:
            return Verdict.unknown("no step baseline ready")
        score, key, ms, expected = worst
        step, location = key.rsplit("|", 1)
        ratio = ms / expected.value if expected.value > 0 else float("inf")
        return Verdict(
            anomalous=ms > expected.upper,
            score=score,
            observed=Observed(value=ms, unit="ms", window_s=0.0, sample_size=1),
            expected=expected,
            summary=(
                f"step {step!r} from {location} took {ms:.0f} ms, {ratio:.1f}x its usual "
                f"{expected.value:.0f} ms (upper bound {expected.upper:.0f} ms)"
            ),
            severity=Severity.ERROR if ratio >= 3 else Severity.WARNING,
            details={
                "step": step,
                "location": location,
                "ratio": ratio,
                "endpoints": step_endpoints(item.result, {step}),
            },
            sample_event_ids=(item.result.run_id,),
        )

    def learn(self, item: SyntheticRun, verdict: Verdict) -> None:
        for key, ms in self._timed_steps(item.result):
            baseline = self._baseline(key)
            expected = baseline.expected()
            if expected is not None and ms > expected.upper:
                baseline.hold(ms)
            else:
                baseline.update(ms)

    def _baseline(self, key: str) -> RobustBaseline:
        baseline = self.baselines.get(key)
        if baseline is None:
            baseline = rolling_baseline(self.cfg.baseline)
            self.baselines[key] = baseline
            if len(self.order) >= self.cfg.max_series:
                self.baselines.pop(self.order.popleft(), None)
        else:
            self.order.remove(key)
        self.order.append(key)
        return baseline

    def to_state(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "b": {k: self.baselines[k].to_state() for k in self.order},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.baselines = {}
        self.order = deque()
        saved = state.get("b", {})
        for key in state.get("order", []):
            baseline = rolling_baseline(self.cfg.baseline)
            baseline.load_state(saved.get(key, {}))
            self.baselines[key] = baseline
            self.order.append(key)
