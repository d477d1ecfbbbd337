"""The access-detector interface: judge one client's sliding state, return a finding or None.

A detector is stateless: everything it reads lives in
:class:`~apiwatch.models.access.state.ClientState`, so it can be rebuilt from
config at any time (after a restart, in a replay). Deciding whether a finding
becomes an alert (one per client and incident, cooldown) is the
:class:`~apiwatch.models.access.incidents.IncidentBook`'s job, not the
detector's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from apiwatch.models.access.records import ClientKind
from apiwatch.models.access.state import ClientState, Col
from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector saw: enough for an analyst to act on without the raw logs."""

    kind: AlertKind
    summary: str
    observed: Observed
    score: float
    severity: Severity = Severity.WARNING
    expected: Expected | None = None
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    offenders: tuple[tuple[str, int], ...] = ()
    sample_event_ids: tuple[str, ...] = ()


class ClientDetector(ABC):
    """Judges one client's state at event time ``now_ms``."""

    kind: ClassVar[AlertKind]
    applies_to: ClassVar[frozenset[ClientKind]]

    @abstractmethod
    def judge(self, state: ClientState, now_ms: int) -> Finding | None:
        """A finding when the client crosses this detector's thresholds, else None."""


def since(now_ms: int, window_s: float) -> int:
    """Start of a trailing window.

    >>> since(10_000, 4)
    6000
    """
    return now_ms - int(window_s * 1000)


def login_facts(state: ClientState, start_ms: int) -> dict[str, Any]:
    """The login counts both credential detectors show as evidence."""
    t = state.totals(start_ms)
    failures, attempts = t[Col.LOGIN_FAIL], t[Col.LOGIN_ATT]
    return {
        "login_attempts": attempts,
        "login_failures": failures,
        "failure_ratio": round(failures / max(1, attempts), 3),
        "distinct_users": state.failed_users.count_since(start_ms),
        "users": state.failed_users.since(start_ms)[:10],
    }


def service_of(route_key: str) -> str:
    """The service of a route key.

    >>> service_of("shop GET /items/{id}")
    'shop'
    """
    return route_key.split(" ", 1)[0]
