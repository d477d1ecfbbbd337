"""Credential stuffing from one IP: failed logins spread over many distinct users.

The distributed, low-and-slow form (every IP under any per-IP threshold) is
only visible on the login route as a whole: see
:mod:`apiwatch.models.access.route_stuffing`.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|198.51.100.4", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=12, login_attempts=12, login_failures=12,
...     failed_users=[f"user{i}" for i in range(12)]))
>>> CredentialStuffing(cfg.stuffing).judge(s, 10_000).summary
'failed logins for 12 distinct users in 5 min (100% of 12 attempts failed)'
"""

from __future__ import annotations

from apiwatch.models.access.config import StuffingConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, login_facts, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, Col
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


class CredentialStuffing(ClientDetector):
    """One IP failing logins for at least ``min_users`` distinct users in ``window_s``.

    The failure share must reach ``min_failure_ratio``: stuffing lists succeed
    for a few percent of accounts at most, while a shared IP (NAT, office) full of
    real users fails a small share of its logins.
    """

    kind = AlertKind.CREDENTIAL_STUFFING
    applies_to = frozenset({ClientKind.IP})

    def __init__(self, cfg: StuffingConfig) -> None:
        self.cfg = cfg

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        if len(state.failed_users) < self.cfg.min_users:
            return None
        start = since(now_ms, self.cfg.window_s)
        users = state.failed_users.count_since(start)
        if users < self.cfg.min_users:
            return None
        t = state.totals(start)
        failures, attempts = t[Col.LOGIN_FAIL], t[Col.LOGIN_ATT]
        if failures < self.cfg.min_failure_ratio * attempts:
            return None
        return Finding(
            kind=self.kind,
            summary=(
                f"failed logins for {users} distinct users in {self.cfg.window_s / 60:g} min "
                f"({failures / max(1, attempts):.0%} of {attempts} attempts failed)"
            ),
            observed=Observed(
                value=users,
                unit="distinct users",
                window_s=self.cfg.window_s,
                sample_size=attempts,
            ),
            expected=Expected(value=1, lower=0, upper=self.cfg.min_users),
            score=users / self.cfg.min_users,
            severity=Severity.ERROR,
            details=login_facts(state, start),
        )
