"""Probing: 404 storms, requests for sensitive files, known scanner User-Agents.

The shapes of CrowdSec's ``http-probing``, ``http-sensitive-files`` and
``http-bad-user-agent`` scenarios, over one sliding window per IP.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|192.0.2.66", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=4, not_found=4, errors_4xx=4,
...     sensitive=["/.env", "/.git/config", "/wp-admin/", "/backup.zip"]))
>>> Probing(cfg.probing).judge(s, 10_000).summary
'4 sensitive paths requested (/.env, /.git/config, /backup.zip)'
"""

from __future__ import annotations

from apiwatch.models.access.config import ProbingConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding, since
from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, Col
from apiwatch.models.alerts import AlertKind, Observed, Severity


class Probing(ClientDetector):
    """Any of: ``min_sensitive_paths`` sensitive paths; ``min_scanner_requests`` from a
    scanner agent; ``min_404_paths`` distinct paths answered 404 making up at least
    ``min_404_share`` of the client's requests, all in ``window_s``.
    """

    kind = AlertKind.PROBING
    applies_to = frozenset({ClientKind.IP})

    def __init__(self, cfg: ProbingConfig) -> None:
        self.cfg = cfg

    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        c = self.cfg
        quiet = (
            len(state.sensitive) < c.min_sensitive_paths and len(state.paths_404) < c.min_404_paths
        )
        if quiet and not state.scanner_agents.values:
            return None
        start = since(now_ms, c.window_s)
        t = state.totals(start)
        sensitive = state.sensitive.since(start)
        paths_404 = state.paths_404.since(start)
        scanners = state.scanner_agents.since(start)
        signals: list[str] = []
        if len(sensitive) >= c.min_sensitive_paths:
            shown = ", ".join(sorted(sensitive)[:3])
            signals.append(f"{len(sensitive)} sensitive paths requested ({shown})")
        if t[Col.SCANNER] >= c.min_scanner_requests and scanners:
            signals.append(f"{t[Col.SCANNER]} requests from scanner agent {scanners[0][:60]!r}")
        storm = len(paths_404) >= c.min_404_paths and t[Col.NOT_FOUND] >= c.min_404_share * max(
            1, t[Col.COUNT]
        )
        if storm:
            signals.append(
                f"404 storm: {len(paths_404)} distinct missing paths, "
                f"{t[Col.NOT_FOUND] / max(1, t[Col.COUNT]):.0%} of {t[Col.COUNT]} requests"
            )
        if not signals:
            return None
        score = max(
            len(sensitive) / c.min_sensitive_paths,
            t[Col.SCANNER] / c.min_scanner_requests if scanners else 0.0,
            len(paths_404) / c.min_404_paths if storm else 0.0,
        )
        return Finding(
            kind=self.kind,
            summary="; ".join(signals),
            observed=Observed(
                value=max(len(sensitive), len(paths_404), t[Col.SCANNER]),
                unit="probe requests",
                window_s=c.window_s,
                sample_size=t[Col.COUNT],
            ),
            score=score,
            severity=Severity.ERROR if len(signals) > 1 else Severity.WARNING,
            details={
                "signals": signals,
                "sensitive_paths": sensitive[:10],
                "missing_paths": paths_404[:10],
                "distinct_missing_paths": len(paths_404),
                "not_found": t[Col.NOT_FOUND],
                "requests": t[Col.COUNT],
                "scanner_agents": scanners,
            },
        )
