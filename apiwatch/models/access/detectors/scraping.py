"""Scraping and resource abuse: far more requests, or routes, than the client's population.

Each micro-window record carries, per route, a quantile of per-client request
counts among all clients of the same kind on that route in that window (the
population reference). A client is a scraper when, over its active windows,
it averages ``rate_factor`` times that reference (and at least ``min_rps``),
and reads broadly: its distinct object ids fill the per-route cap or reach
``min_distinct_share`` of its requests. A busy client re-reading a hot set of
objects, or writing, is not a crawl. Or when it touches ``routes_factor`` times
the population's number of distinct routes (and at least ``min_routes``)
without being refused. An IP behind which many users sit (carrier NAT) is
judged per user.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow, RouteSlice
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|192.0.2.50", cfg)
>>> for w in range(3):
...     sl = RouteSlice(count=60, ids=[f"{w}-{i}" for i in range(60)], paths=60,
...                     ref=2.0, population=200)
...     s.merge(ClientWindow(client=s.client, start_ms=w * 10_000, end_ms=(w + 1) * 10_000,
...         first_ms=w * 10_000, last_ms=w * 10_000 + 9_000, count=60,
...         routes={"shop GET /products/{id}": sl}))
>>> Scraping(cfg.scraping, cfg.fold).judge(s, 30_000).summary
'6.0 req/s on GET /products/{id}, 30x the population (2.0 per 10 s), 64+ distinct ids'
"""

from __future__ import annotations

from apiwatch.models.access.config import FoldConfig, ScrapingConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, Col, RCol
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity

_READS = ("GET", "HEAD")


class Scraping(ClientDetector):
    """Request rate or route breadth far above the population on the same routes."""

    kind = AlertKind.SCRAPING
    applies_to = frozenset({ClientKind.IP, ClientKind.CREDENTIAL})

    def __init__(self, cfg: ScrapingConfig, fold: FoldConfig) -> None:
        self.cfg = cfg
        self.window_s = fold.window_s
        self.id_cap = fold.max_values

    def _actors(self, state: ClientState, start: int) -> int:
        users = state.users.count_since(start) if state.is_ip else 0
        return users if users >= self.cfg.shared_ip_min_users else 1

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        c = self.cfg
        if state.counters.windows_since(0) < c.min_windows:
            return None
        start = since(now_ms, c.window_s)
        if state.totals(start)[Col.COUNT] < c.min_windows * c.min_rps * self.window_s:
            return None
        actors = self._actors(state, start)
        return self._by_rate(state, start, actors) or self._by_breadth(state, start, actors)

    def _by_rate(self, state: ClientState, start: int, actors: int) -> Finding | None:
        c = self.cfg
        best: Finding | None = None
        for rkey, series in state.routes.items():
            service, method, route = rkey.split(" ", 2)
            if method not in _READS:
                continue
            rows = [
                r for r in series.rows_since(start) if r[1 + RCol.POPULATION] >= c.min_population
            ]
            if len(rows) < c.min_windows:
                continue
            per_window = sum(r[1 + RCol.COUNT] for r in rows) / len(rows) / actors
            ref = sum(max(1.0, r[1 + RCol.REF_MILLI] / 1000) for r in rows) / len(rows)
            rps = per_window / self.window_s
            if per_window < c.rate_factor * ref or rps < c.min_rps:
                continue
            ids = state.ids.get(rkey)
            distinct = ids.count_since(start) if ids is not None else 0
            total = sum(r[1 + RCol.COUNT] for r in rows)
            if distinct < self.id_cap and distinct < c.min_distinct_share * total:
                continue
            ratio = per_window / ref
            if best is not None and ratio <= best.score * c.rate_factor:
                continue
            shown = f"{distinct}+" if distinct >= self.id_cap else str(distinct)
            best = Finding(
                kind=self.kind,
                summary=(
                    f"{rps:.1f} req/s on {method} {route}, {ratio:.0f}x the population "
                    f"({ref:.1f} per {self.window_s:g} s), {shown} distinct ids"
                ),
                observed=Observed(
                    value=round(rps, 3), unit="req/s", window_s=c.window_s, sample_size=total
                ),
                expected=Expected(
                    value=round(ref / self.window_s, 3),
                    lower=0,
                    upper=round(c.rate_factor * ref / self.window_s, 3),
                ),
                score=ratio / c.rate_factor,
                severity=Severity.WARNING,
                labels={"service": service, "method": method, "route": route},
                details={
                    "requests": total,
                    "active_windows": len(rows),
                    "population_reference": round(ref, 3),
                    "population_clients": max(r[1 + RCol.POPULATION] for r in rows),
                    "distinct_ids": distinct,
                    "actors": actors,
                    "ids": ids.since(start)[:10] if ids is not None else [],
                },
            )
        return best

    def _by_breadth(self, state: ClientState, start: int, actors: int) -> Finding | None:
        c = self.cfg
        rows = state.counters.rows_since(start)
        if len(rows) < c.min_windows or actors > 1:
            return None
        served = [
            rkey
            for rkey, s in state.routes.items()
            if (t := s.sum_since(start))[RCol.COUNT] > t[RCol.DENIED]
        ]
        ref = sum(max(1.0, r[1 + Col.ROUTES_REF_MILLI] / 1000) for r in rows) / len(rows)
        if len(served) < max(c.min_routes, c.routes_factor * ref):
            return None
        total = sum(r[1 + Col.COUNT] for r in rows)
        if total / len(rows) / self.window_s < c.min_rps:
            return None
        return Finding(
            kind=self.kind,
            summary=(
                f"{len(served)} distinct routes in {c.window_s / 60:g} min, "
                f"{len(served) / ref:.0f}x the population ({ref:.1f} per {self.window_s:g} s)"
            ),
            observed=Observed(
                value=len(served), unit="distinct routes", window_s=c.window_s, sample_size=total
            ),
            expected=Expected(value=ref, lower=0, upper=c.routes_factor * ref),
            score=len(served) / max(c.min_routes, c.routes_factor * ref),
            severity=Severity.WARNING,
            details={"requests": total, "routes": sorted(served)[:10]},
        )
