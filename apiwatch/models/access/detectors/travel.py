"""Impossible travel: two countries too far apart for the time between.

Positions are country centroids (:mod:`apiwatch.models.access.countries`);
the pair must be at least ``min_distance_km`` apart (neighbours' centroids
say nothing) and each country must have ``min_events`` requests (one stray
request through a VPN exit is not a journey).

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|user|alice", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=6, countries={"FR": (0, 2_000, 3), "AU": (8_000, 9_000, 3)}))
>>> ImpossibleTravel(cfg.travel).judge(s, 10_000).summary
'FR then AU: 15165 km in 6 s'
"""

from __future__ import annotations

import itertools
from typing import Any

from apiwatch.models.access.config import TravelConfig
from apiwatch.models.access.countries import distance_km
from apiwatch.models.access.detectors.base import ClientDetector, Finding, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ImpossibleTravel(ClientDetector):
    """Consecutive visits to two countries faster than ``max_speed_kmh`` apart."""

    kind = AlertKind.IMPOSSIBLE_TRAVEL
    applies_to = frozenset({ClientKind.USER, ClientKind.CREDENTIAL})

    def __init__(self, cfg: TravelConfig) -> None:
        self.cfg = cfg

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        c = self.cfg
        if len(state.visits) < 2:
            return None
        start = since(now_ms, c.window_s)
        visits = [v for v in state.visits if v[2] >= start and v[3] >= c.min_events]
        best: tuple[float, list[Any], list[Any], float, float] | None = None
        for a, b in itertools.pairwise(visits):
            if a[0] == b[0]:
                continue
            km = distance_km(a[0], b[0])
            if km is None or km < c.min_distance_km:
                continue
            gap_s = max(1.0, (int(b[1]) - int(a[2])) / 1000)
            speed = km / (gap_s / 3600)
            if speed > c.max_speed_kmh and (best is None or speed > best[0]):
                best = (speed, a, b, km, gap_s)
        if best is None:
            return None
        speed, a, b, km, gap_s = best
        return Finding(
            kind=self.kind,
            summary=f"{a[0]} then {b[0]}: {km:.0f} km in {_span(gap_s)}",
            observed=Observed(
                value=round(speed),
                unit="km/h",
                window_s=c.window_s,
                sample_size=int(a[3]) + int(b[3]),
            ),
            expected=Expected(value=0, lower=0, upper=c.max_speed_kmh),
            score=speed / c.max_speed_kmh,
            severity=Severity.WARNING,
            details={
                "from": {"country": a[0], "last_seen_ms": a[2], "requests": a[3]},
                "to": {"country": b[0], "first_seen_ms": b[1], "requests": b[3]},
                "distance_km": round(km),
                "gap_s": gap_s,
                "ips": state.ips.since(start)[:10],
            },
        )
