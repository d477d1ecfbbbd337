"""Detection quality on simulated traffic: recall, precision, time to detect, false alerts.

Two scenarios run through :class:`apiwatch.models.backtest.EventReplay` (the
bucket folder, series monitors and linker of the stream) at default settings:

* ``incidents``: a few hours of traffic with latency spikes (>= 3x), error
  surges (>= 5 points, some on a 1-2 req/s route), an endpoint going silent
  and synthetic outages, after an hour of warm-up;
* ``normal``: the same services with no incident, to count false alerts per day.

An alert detects an incident when its kind is one the simulator maps to the
incident kind (``DETECTED_BY``), its labels match the incident's target and it
fires between the incident's start and five minutes after its end. Every
other firing alert is false.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

import orjson

from apiwatch.models.backtest import EventReplay
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.monitor import Emission
from apiwatch.models.simulation import DETECTED_BY, Scenario, Simulator, Truth

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GRACE_MS = 300_000
STEP_MS = 60_000

SERVICES: list[dict[str, Any]] = [
    {
        "name": "shop",
        "rate_rps": 40,
        "routes": [
            {"method": "GET", "route": "/products/{id}", "weight": 5, "latency_ms": 45},
            {"method": "GET", "route": "/products", "weight": 3, "latency_ms": 90},
            {"method": "POST", "route": "/checkout", "weight": 1, "latency_ms": 240},
        ],
    },
    {
        "name": "auth",
        "rate_rps": 15,
        "routes": [
            {
                "method": "POST",
                "route": "/login",
                "weight": 1,
                "latency_ms": 120,
                "client_error_rate": 0.05,
            },
            {
                "method": "GET",
                "route": "/session",
                "weight": 4,
                "latency_ms": 15,
                "latency_sigma": 0.3,
            },
        ],
    },
    {
        "name": "payments",
        "rate_rps": 6,
        "routes": [
            {
                "method": "POST",
                "route": "/payments",
                "weight": 1,
                "latency_ms": 300,
                "error_rate": 0.01,
            },
            {"method": "GET", "route": "/payments/{id}", "weight": 2, "latency_ms": 40},
        ],
    },
]
CHECKS: list[dict[str, Any]] = [
    {
        "check_id": "checkout-flow",
        "name": "Browse and check out",
        "service": "shop",
        "interval_s": 60,
        "steps": [
            {"name": "list", "method": "GET", "route": "/products", "latency_ms": 110},
            {"name": "check out", "method": "POST", "route": "/checkout", "latency_ms": 260},
        ],
    },
    {
        "check_id": "login",
        "name": "Log in",
        "service": "auth",
        "interval_s": 60,
        "steps": [{"name": "log in", "method": "POST", "route": "/login", "latency_ms": 130}],
    },
]


def _incident(
    kind: str, start_min: float, minutes: float, magnitude: float, **target: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": target,
        "start_s": start_min * 60,
        "duration_s": minutes * 60,
        "magnitude": magnitude,
    }


INCIDENTS = [
    _incident("latency_spike", 60, 8, 3.0, service="shop", method="GET", route="/products/{id}"),
    _incident("error_surge", 80, 8, 0.05, service="shop", method="GET", route="/products"),
    _incident("synthetic_outage", 100, 8, 1.0, check="login"),
    _incident("latency_spike", 120, 8, 5.0, service="payments", method="POST", route="/payments"),
    _incident(
        "error_surge", 140, 8, 0.08, service="payments", method="GET", route="/payments/{id}"
    ),
    _incident("traffic_drop", 160, 8, 0.02, service="auth", method="GET", route="/session"),
    _incident("synthetic_outage", 180, 8, 0.67, check="checkout-flow"),
    _incident("error_surge", 200, 8, 0.3, service="auth", method="POST", route="/login"),
    _incident("latency_spike", 220, 8, 4.0, service="auth", method="GET", route="/session"),
    _incident("error_surge", 240, 8, 0.05, service="shop", method="POST", route="/checkout"),
]


def run(scenario: Scenario, cfg: DetectionConfig) -> tuple[list[Emission], Simulator, float, int]:
    sim = Simulator(scenario, START_MS)
    replay = EventReplay(cfg, bucket_s=10, allowed_lateness_s=10)
    emissions: list[Emission] = []
    total = int(scenario.duration_s * 1000)
    started = time.perf_counter()
    lines = 0
    for lo in range(0, total, STEP_MS):
        rum, syn = sim.generate(lo, lo + STEP_MS)
        chunk = [orjson.dumps(x) for x in rum + syn]
        lines += len(chunk)
        emissions.extend(replay.feed(chunk, lines, now_s=(START_MS + total) / 1000))
    emissions.extend(replay.finish())
    return emissions, sim, time.perf_counter() - started, lines


def _matches(e: Emission, truth: Truth) -> bool:
    if e.alert.kind.value not in DETECTED_BY.get(truth.kind, ()):
        return False
    labels = e.alert.labels
    if any(labels.get(k) != v for k, v in truth.labels.items() if k != "environment"):
        return False
    t = int(e.time.timestamp() * 1000)
    return truth.start_ms <= t <= truth.end_ms + GRACE_MS


def score(
    emissions: list[Emission], truths: list[Truth]
) -> tuple[dict[str, list[float | None]], int, int]:
    """Per incident kind the times to detect (None = missed), true and false firing counts."""
    firing = [e for e in emissions if e.transition == "firing"]
    ttd: dict[str, list[float | None]] = defaultdict(list)
    used: set[int] = set()
    for truth in truths:
        hits = [i for i, e in enumerate(firing) if _matches(e, truth)]
        used.update(hits)
        first = min((int(firing[i].time.timestamp() * 1000) for i in hits), default=None)
        ttd[truth.kind].append(None if first is None else (first - truth.start_ms) / 1000)
    return ttd, len(used), len(firing) - len(used)


def report() -> None:
    cfg = DetectionConfig()
    base = {"seed": 11, "clients": 2000, "services": SERVICES, "checks": CHECKS}
    incidents = Scenario.model_validate({**base, "duration_s": 270 * 60, "incidents": INCIDENTS})
    emissions, sim, elapsed, lines = run(incidents, cfg)
    ttd, true_alerts, false_alerts = score(emissions, sim.truth())
    print(
        f"Simulator, incident scenario: {incidents.duration_s / 3600:.1f} h, {lines} events "
        f"replayed in {elapsed:.1f} s"
    )
    print(f"  {'incident kind':18s} {'detected':>9s} {'median TTD s':>13s}")
    for kind, times in sorted(ttd.items()):
        found = [t for t in times if t is not None]
        med = f"{statistics.median(found):.0f}" if found else "-"
        print(f"  {kind:18s} {len(found):>4d}/{len(times):<4d} {med:>13s}")
    all_found = [t for times in ttd.values() for t in times if t is not None]
    n = sum(len(t) for t in ttd.values())
    precision = true_alerts / (true_alerts + false_alerts) if true_alerts + false_alerts else 0.0
    print(
        f"  recall {len(all_found)}/{n} = {len(all_found) / n:.2f}; precision "
        f"{true_alerts}/{true_alerts + false_alerts} = {precision:.2f}; median TTD "
        f"{statistics.median(all_found) if all_found else float('nan'):.0f} s"
    )
    for e in emissions:
        if e.transition == "firing" and not any(_matches(e, t) for t in sim.truth()):
            print(f"    false: {e.time:%H:%M:%S} {e.alert.kind.value} {e.alert.summary[:110]}")

    hours = 12
    normal = Scenario.model_validate({**base, "seed": 12, "duration_s": hours * 3600})
    emissions, _, elapsed, lines = run(normal, cfg)
    false = [e for e in emissions if e.transition == "firing"]
    print(
        f"Simulator, normal traffic: {hours} h, {lines} events replayed in {elapsed:.1f} s: "
        f"{len(false)} false alerts = {len(false) * 24 / hours:.1f} per day "
        f"(all {sum(len(s['routes']) for s in SERVICES)} endpoints and {len(CHECKS)} checks)"
    )
    for e in false:
        print(f"    false: {e.time:%H:%M:%S} {e.alert.kind.value} {e.alert.summary[:110]}")
