"""Aggregation groups: alerts of one route and one set of group labels, flushed on a timer.

As in Alertmanager: a new group waits ``group_wait`` before its first
notification, so a burst becomes one message; after that it is looked at every
``group_interval``. Time is passed in (seconds, any monotonic-enough clock), so
the state machine is tested without waiting.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.alerts import Alert, AlertEvent, AlertKind, AlertStatus, Severity
>>> from apiwatch.models.delivery.routing import ROOT_DEFAULTS
>>> def ev(fp, status="firing"):
...     a = Alert(fingerprint=fp, kind=AlertKind.ERROR_SURGE, status=AlertStatus(status),
...               severity=Severity.ERROR, summary="s", started_at=datetime(2026, 1, 1, tzinfo=UTC))
...     return AlertEvent.emit(a, transition=status, source="/t")
>>> g = AggregationGroup("0:{}", ROOT_DEFAULTS, {}, now=100.0)
>>> g.insert(ev("a"), now=100.0); g.insert(ev("b"), now=101.0)
>>> g.due(129.9), g.due(130.0)
(False, True)
>>> [e.subject for e in g.flush(now=130.0)], g.next_flush_at
(['a', 'b'], 430.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from apiwatch.models.alerts import AlertEvent, AlertStatus
from apiwatch.models.delivery.routing import Route


class AggregationGroup:
    """The alerts currently in one group and when the group is next flushed."""

    def __init__(self, key: str, route: Route, labels: Mapping[str, str], now: float) -> None:
        self.key = key
        self.route = route
        self.labels = dict(labels)
        self.alerts: dict[str, AlertEvent] = {}
        self.next_flush_at = now + route.group_wait_s

    def insert(self, event: AlertEvent, now: float) -> None:
        """Add or update an alert. A later emission replaces an earlier one, never the reverse."""
        current = self.alerts.get(event.subject)
        if current is None or event.time >= current.time:
            self.alerts[event.subject] = event

    def due(self, now: float) -> bool:
        return bool(self.alerts) and now >= self.next_flush_at

    def flush(self, now: float) -> list[AlertEvent]:
        """Snapshot the alerts (ordered by fingerprint) and schedule the next look."""
        self.next_flush_at = now + self.route.group_interval_s
        return [self.alerts[fp] for fp in sorted(self.alerts)]

    def forget_resolved(self, snapshot: Sequence[AlertEvent]) -> None:
        """Drop resolved alerts that were notified, unless they changed since the snapshot."""
        for event in snapshot:
            if (
                event.data.status is AlertStatus.RESOLVED
                and self.alerts.get(event.subject) is event
            ):
                del self.alerts[event.subject]

    @property
    def empty(self) -> bool:
        return not self.alerts
