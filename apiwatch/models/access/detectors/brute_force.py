"""Brute force: many failed logins from one IP, or against one user.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|203.0.113.7", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=30, login_attempts=30, login_failures=29, failed_users=["admin"],
...     services={"auth": 30}))
>>> BruteForce(cfg.brute_force, cfg.stuffing).judge(s, 10_000).summary
'29 failed logins in 5 min (97% of 30 attempts) against 1 user(s)'
"""

from __future__ import annotations

from apiwatch.models.access.config import BruteForceConfig, StuffingConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, login_facts, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, Col
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


class BruteForce(ClientDetector):
    """Failed logins from one IP (few users: many users is stuffing), or against one user.

    Parameters
    ----------
    cfg
        ``min_failures`` (per IP) or ``min_failures_per_user`` failed logins in
        ``window_s``, at least ``min_failure_ratio`` of the client's login attempts:
        a carrier NAT full of users who mistype stays far below that share.
    stuffing
        Its ``min_users`` is where brute force ends and credential stuffing begins.
    """

    kind = AlertKind.BRUTE_FORCE
    applies_to = frozenset({ClientKind.IP, ClientKind.USER, ClientKind.CREDENTIAL})

    def __init__(self, cfg: BruteForceConfig, stuffing: StuffingConfig) -> None:
        self.cfg = cfg
        self.stuffing_users = stuffing.min_users

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        start = since(now_ms, self.cfg.window_s)
        t = state.totals(start)
        failures, attempts = t[Col.LOGIN_FAIL], t[Col.LOGIN_ATT]
        users = state.failed_users.count_since(start)
        if state.is_ip:
            threshold = self.cfg.min_failures
            if users >= self.stuffing_users:
                return None
        else:
            threshold = self.cfg.min_failures_per_user
        if failures < threshold or failures < self.cfg.min_failure_ratio * attempts:
            return None
        minutes = self.cfg.window_s / 60
        ips = state.failed_ips.since(start)
        target = f"against {users} user(s)" if state.is_ip else f"from {len(ips)} IP(s)"
        return Finding(
            kind=self.kind,
            summary=(
                f"{failures} failed logins in {minutes:g} min "
                f"({failures / max(1, attempts):.0%} of {attempts} attempts) {target}"
            ),
            observed=Observed(
                value=failures,
                unit="failed logins",
                window_s=self.cfg.window_s,
                sample_size=attempts,
            ),
            expected=Expected(value=0, lower=0, upper=threshold),
            score=failures / threshold,
            severity=Severity.ERROR,
            details={**login_facts(state, start), "source_ips": ips[:10]},
        )
