"""Enumeration (OWASP API1, BOLA): one client walking many object ids on one route.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow, RouteSlice
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|192.0.2.10", cfg)
>>> walk = RouteSlice(count=40, denied=30, ids=[str(i) for i in range(40)], paths=40)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=40, routes={"shop GET /orders/{id}": walk}))
>>> f = Enumeration(cfg.enumeration).judge(s, 10_000)
>>> f.summary, f.labels["route"]
('40 distinct ids on GET /orders/{id} in 2 min, 75% answered 403/404', '/orders/{id}')
"""

from __future__ import annotations

from apiwatch.models.access.config import EnumerationConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, RCol
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


class Enumeration(ClientDetector):
    """At least ``min_ids`` distinct ids on one route in ``window_s``, ``min_denied_share`` refused.

    The refused share (403/404) is what tells enumeration from a busy client
    fetching its own objects: a walk over ids it does not own hits objects it
    may not see, or that do not exist.
    """

    kind = AlertKind.ENUMERATION
    applies_to = frozenset({ClientKind.IP, ClientKind.USER, ClientKind.CREDENTIAL})

    def __init__(self, cfg: EnumerationConfig) -> None:
        self.cfg = cfg

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        start = since(now_ms, self.cfg.window_s)
        best: tuple[int, str, int, int] | None = None
        for rkey, ids in state.ids.items():
            if len(ids) < self.cfg.min_ids:
                continue
            distinct = ids.count_since(start)
            if distinct < self.cfg.min_ids:
                continue
            series = state.routes.get(rkey)
            if series is None:
                continue
            t = series.sum_since(start)
            count, denied = t[RCol.COUNT], t[RCol.DENIED]
            if count == 0 or denied < self.cfg.min_denied_share * count:
                continue
            if best is None or distinct > best[0]:
                best = (distinct, rkey, count, denied)
        if best is None:
            return None
        distinct, rkey, count, denied = best
        service, method, route = rkey.split(" ", 2)
        return Finding(
            kind=self.kind,
            summary=(
                f"{distinct} distinct ids on {method} {route} in {self.cfg.window_s / 60:g} min, "
                f"{denied / count:.0%} answered 403/404"
            ),
            observed=Observed(
                value=distinct, unit="distinct ids", window_s=self.cfg.window_s, sample_size=count
            ),
            expected=Expected(value=1, lower=0, upper=self.cfg.min_ids),
            score=distinct / self.cfg.min_ids,
            severity=Severity.ERROR,
            labels={"service": service, "method": method, "route": route},
            details={
                "requests": count,
                "denied": denied,
                "denied_share": round(denied / count, 3),
                "distinct_ids": distinct,
                "ids": state.ids[rkey].since(start)[:10],
            },
        )
