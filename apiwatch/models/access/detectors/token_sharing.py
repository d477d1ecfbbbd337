"""Token sharing: one user or credential used from many IPs or countries at once.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|credential|key-7", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=12, ips=[f"198.51.100.{i}" for i in range(12)],
...     countries={"US": (0, 5_000, 6), "BR": (1_000, 9_000, 6)}))
>>> TokenSharing(cfg.token_sharing).judge(s, 10_000).summary
'used from 12 IPs in 2 countries (BR, US) within 60 min'
"""

from __future__ import annotations

from apiwatch.models.access.config import TokenSharingConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


class TokenSharing(ClientDetector):
    """At least ``min_ips`` IPs over ``min_ips_countries`` countries, or ``min_countries``
    countries, in ``window_s``. A phone hopping between Wi-Fi and mobile data
    shows a handful of IPs in one country; a leaked or shared token shows many.
    """

    kind = AlertKind.TOKEN_SHARING
    applies_to = frozenset({ClientKind.USER, ClientKind.CREDENTIAL})

    def __init__(self, cfg: TokenSharingConfig) -> None:
        self.cfg = cfg

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        c = self.cfg
        if len(state.ips) < c.min_ips and len(state.visits) < c.min_countries:
            return None
        start = since(now_ms, c.window_s)
        ips = state.ips.since(start)
        countries = sorted({v[0] for v in state.visits if v[2] >= start})
        many_ips = len(ips) >= c.min_ips and len(countries) >= c.min_ips_countries
        if not many_ips and len(countries) < c.min_countries:
            return None
        score = max(len(ips) / c.min_ips, len(countries) / c.min_countries)
        return Finding(
            kind=self.kind,
            summary=(
                f"used from {len(ips)} IPs in {len(countries)} countries "
                f"({', '.join(countries)}) within {c.window_s / 60:g} min"
            ),
            observed=Observed(
                value=len(ips),
                unit="distinct IPs",
                window_s=c.window_s,
                sample_size=len(countries),
            ),
            expected=Expected(value=1, lower=0, upper=c.min_ips),
            score=score,
            severity=Severity.WARNING,
            details={"ips": ips[:20], "countries": countries, "distinct_ips": len(ips)},
        )
