"""Distributed credential stuffing: the login route's failure ratio far above its baseline.

Low-and-slow stuffing spreads attempts over so many IPs that none crosses a
per-IP threshold; it shows on the login route as a whole: failures spread over
many users and IPs, and a failure ratio far above the route's own history.
:class:`LoginRouteState` keeps that route-level view per login route (sliding
windows of attempts and failures, distinct failing users and IPs, a baseline
of per-minute failure ratios that skips minutes judged anomalous, so an attack
never becomes the norm); :class:`DistributedStuffing` judges it.

>>> from apiwatch.models.access.config import StuffingConfig
>>> from apiwatch.models.access.records import LoginWindow
>>> cfg = StuffingConfig()
>>> s = LoginRouteState("production|auth|POST|/login", cfg)
>>> s.merge(LoginWindow(route=s.route, start_ms=0, end_ms=10_000, attempts=60, failures=55,
...     failed_users=[f"u{i}" for i in range(50)],
...     failed_ips={f"198.51.100.{i}": 5 for i in range(11)}))
>>> DistributedStuffing(cfg).judge(s, 10_000).summary
'55 failed logins for 50 users from 11 IPs in 5 min: 92% failed, baseline 10%'
"""

from __future__ import annotations

import statistics
from typing import Any

from apiwatch.models.access.config import StuffingConfig
from apiwatch.models.access.detectors.base import Finding, since
from apiwatch.models.access.recent import RecentSet, WindowSeries
from apiwatch.models.access.records import LoginWindow
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity

_MINUTE_MS = 60_000
_MAX_USERS = 1024
_MAX_IPS = 256


class LoginRouteState:
    """Sliding state of one login route (``environment|service|METHOD|route``)."""

    def __init__(self, route: str, cfg: StuffingConfig) -> None:
        self.route = route
        self.cfg = cfg
        self.windows = WindowSeries(2)  # attempts, failures per micro-window
        self.failed_users = RecentSet(_MAX_USERS)
        self.ok_users = RecentSet(_MAX_USERS)
        self.failed_ips = RecentSet(_MAX_IPS)
        self.ip_failures: dict[str, int] = {}
        # [minute_start, attempts, failures, users failing and never succeeding over the
        # window ending with the minute], normal minutes only
        self.baseline: list[list[int]] = []
        self.abnormal_minutes: list[int] = []
        self.closed_through = -(2**62)
        self.samples: list[str] = []
        self.last_ms = 0

    @property
    def labels(self) -> dict[str, str]:
        env, service, method, route = self.route.split("|", 3)
        return {"environment": env, "service": service, "method": method, "route": route}

    def merge(self, r: LoginWindow) -> None:
        self._close_minutes(r.start_ms)
        self.windows.add(r.start_ms, [r.attempts, r.failures])
        t = r.start_ms
        self.last_ms = max(self.last_ms, r.end_ms)
        self.failed_users.update(r.failed_users, t)
        self.ok_users.update(r.ok_users, t)
        for ip, n in r.failed_ips.items():
            self.failed_ips.add(ip, t)
            self.ip_failures[ip] = self.ip_failures.get(ip, 0) + n
        self.samples = (self.samples + r.samples)[-10:]
        start = since(self.last_ms, self.cfg.window_s)
        self.windows.prune(start - _MINUTE_MS)
        self.failed_users.prune(start - _MINUTE_MS)
        self.ok_users.prune(start - _MINUTE_MS)
        self.failed_ips.prune(start)
        self.ip_failures = {
            ip: n for ip, n in self.ip_failures.items() if ip in self.failed_ips.values
        }

    def failed_only(self, since_ms: int, until_ms: int | None = None) -> int:
        """Distinct users whose logins failed since ``since_ms`` and never succeeded.

        A real user who mistypes logs in a moment later; a stuffing list's
        accounts almost never do, however slowly the list is worked through.
        """
        ok = self.ok_users.values
        return sum(
            1
            for u, t in self.failed_users.values.items()
            if t >= since_ms and (until_ms is None or t < until_ms) and u not in ok
        )

    def mark_abnormal(self, t_ms: int) -> None:
        """The minute of ``t_ms`` was judged anomalous: keep it out of the baseline."""
        minute = t_ms - t_ms % _MINUTE_MS
        if minute not in self.abnormal_minutes:
            self.abnormal_minutes = [*self.abnormal_minutes, minute][-self.cfg.baseline_minutes :]

    def _close_minutes(self, now_ms: int) -> None:
        # Whole minutes before the current one are final: move them into the baseline.
        current = now_ms - now_ms % _MINUTE_MS
        per_minute: dict[int, list[int]] = {}
        for row in self.windows.rows_since(self.closed_through + _MINUTE_MS):
            minute = row[0] - row[0] % _MINUTE_MS
            if minute >= current:
                break
            acc = per_minute.setdefault(minute, [0, 0])
            acc[0] += row[1]
            acc[1] += row[2]
        for minute in sorted(per_minute):
            if minute not in self.abnormal_minutes and per_minute[minute][0] > 0:
                # The same statistic the detector reads, as it stood at the minute's end.
                end = minute + _MINUTE_MS
                only = self.failed_only(end - int(self.cfg.window_s * 1000), end)
                self.baseline.append([minute, *per_minute[minute], only])
            self.closed_through = minute
        del self.baseline[: -self.cfg.baseline_minutes]

    def baseline_ratio(self) -> tuple[float, int, float | None]:
        """(failure ratio, minutes of history, usual users failing and never succeeding).

        Medians over the minutes, not pooled sums: an attack the route-level rule
        did not flag (one IP's stuffing, a brute force) moves a few minutes, and
        must not raise the bar for the next distributed one. Until
        ``warmup_minutes`` of history: the prior ratio, and no user baseline.
        """
        minutes = [m for m in self.baseline if m[1] > 0]
        if len(minutes) < self.cfg.warmup_minutes:
            return self.cfg.prior_failure_ratio, len(minutes), None
        ratio = statistics.median(m[2] / m[1] for m in minutes)
        return ratio, len(minutes), statistics.median(m[3] for m in minutes)

    def to_state(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "windows": self.windows.to_state(),
            "failed_users": self.failed_users.to_state(),
            "ok_users": self.ok_users.to_state(),
            "failed_ips": self.failed_ips.to_state(),
            "ip_failures": dict(self.ip_failures),
            "baseline": [list(m) for m in self.baseline],
            "abnormal_minutes": list(self.abnormal_minutes),
            "closed_through": self.closed_through,
            "samples": list(self.samples),
            "last_ms": self.last_ms,
        }

    @classmethod
    def from_state(cls, cfg: StuffingConfig, state: dict[str, Any]) -> LoginRouteState:
        s = cls(state["route"], cfg)
        s.windows = WindowSeries(2, state.get("windows", []))
        s.failed_users = RecentSet(_MAX_USERS, state.get("failed_users", {}))
        s.ok_users = RecentSet(_MAX_USERS, state.get("ok_users", {}))
        s.failed_ips = RecentSet(_MAX_IPS, state.get("failed_ips", {}))
        s.ip_failures = dict(state.get("ip_failures", {}))
        s.baseline = [list(m) for m in state.get("baseline", [])]
        s.abnormal_minutes = list(state.get("abnormal_minutes", []))
        s.closed_through = int(state.get("closed_through", -(2**62)))
        s.samples = list(state.get("samples", []))
        s.last_ms = int(state.get("last_ms", 0))
        return s


class DistributedStuffing:
    """Failures over many users and IPs at a ratio far above the route's baseline.

    Fires when, in ``window_s``: at least ``route_min_attempts`` logins,
    ``route_min_users`` distinct failing users and ``route_min_ips`` distinct
    failing IPs, and either a failure ratio of at least ``route_ratio_factor``
    times the baseline and ``route_ratio_margin`` above it, or (low and slow,
    hidden in a busy route's volume) ``route_users_factor`` times the usual
    number of users whose logins fail and never succeed.
    """

    kind = AlertKind.CREDENTIAL_STUFFING

    def __init__(self, cfg: StuffingConfig) -> None:
        self.cfg = cfg

    def judge(self, state: LoginRouteState, now_ms: int) -> Finding | None:
        c = self.cfg
        start = since(now_ms, c.window_s)
        attempts, failures = state.windows.sum_since(start)
        users = state.failed_users.count_since(start)
        ips = state.failed_ips.count_since(start)
        if attempts < c.route_min_attempts or users < c.route_min_users or ips < c.route_min_ips:
            return None
        ratio = failures / attempts
        base, minutes, usual_only = state.baseline_ratio()
        bound = max(base * c.route_ratio_factor, base + c.route_ratio_margin)
        only = state.failed_only(start)
        expected_only = usual_only or 0.0
        users_bound = max(c.route_min_users, c.route_users_factor * expected_only)
        by_ratio = ratio >= bound
        by_users = usual_only is not None and only >= users_bound
        if not (by_ratio or by_users):
            return None
        offenders = sorted(state.ip_failures.items(), key=lambda kv: -kv[1])[:10]
        return Finding(
            kind=self.kind,
            summary=(
                f"{failures} failed logins for {users} users from {ips} IPs in "
                f"{c.window_s / 60:g} min: {ratio:.0%} failed, baseline {base:.0%}"
            ),
            observed=Observed(
                value=round(ratio, 4),
                unit="failure ratio",
                window_s=c.window_s,
                sample_size=attempts,
            ),
            expected=Expected(value=round(base, 4), lower=0, upper=round(bound, 4)),
            score=max(ratio / max(bound, 1e-9), only / users_bound),
            severity=Severity.CRITICAL,
            offenders=tuple(offenders),
            sample_event_ids=tuple(state.samples[-5:]),
            details={
                "login_attempts": attempts,
                "login_failures": failures,
                "distinct_users": users,
                "distinct_ips": ips,
                "max_failures_per_ip": offenders[0][1] if offenders else 0,
                "baseline_minutes": minutes,
                "users_never_succeeding": only,
                "expected_users_never_succeeding": round(expected_only, 1),
                "users": state.failed_users.since(start)[:10],
            },
        )
