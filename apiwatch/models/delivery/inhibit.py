"""Inhibition and silences behind one interface, :class:`Muter`.

An inhibition rule mutes an alert matching its ``target_matchers`` while
another alert matching its ``source_matchers`` fires with equal values of the
``equal`` labels: a synthetic outage of an endpoint makes its latency alerts
noise.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.alerts import Alert, AlertKind, AlertStatus, Severity
>>> from apiwatch.models.delivery.config import InhibitRuleConfig
>>> def alert(fp, kind, route):
...     return Alert(fingerprint=fp, kind=kind, status=AlertStatus.FIRING, severity=Severity.ERROR,
...                  summary="s", labels={"route": route}, started_at=datetime(2026, 1, 1, tzinfo=UTC))
>>> rule = InhibitRuleConfig(source_matchers=["kind=synthetic_failure"],
...                          target_matchers=["kind=latency_spike"], equal=["route"])
>>> outage = alert("s1", AlertKind.SYNTHETIC_FAILURE, "/pay")
>>> inhibitor = Inhibitor([rule], firing=lambda: [outage])
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> inhibitor.mutes(alert("l1", AlertKind.LATENCY_SPIKE, "/pay"), now)
True
>>> inhibitor.mutes(alert("l2", AlertKind.LATENCY_SPIKE, "/cart"), now)
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from apiwatch.models.alerts import Alert
from apiwatch.models.delivery.config import InhibitRuleConfig
from apiwatch.models.delivery.matchers import alert_labels, match_all


class Muter(Protocol):
    """Anything that can decide an alert must not be notified now."""

    def mutes(self, alert: Alert, now: datetime) -> bool: ...


class Inhibitor:
    """Applies inhibition rules against the alerts firing right now.

    ``firing`` returns the currently firing alerts of *all* partitions, so a
    source alert handled by another worker still inhibits.
    """

    def __init__(
        self, rules: Sequence[InhibitRuleConfig], firing: Callable[[], Iterable[Alert]]
    ) -> None:
        self.rules = list(rules)
        self.firing = firing

    def mutes(self, alert: Alert, now: datetime) -> bool:
        targeted = [r for r in self.rules if match_all(r.target_matchers, alert_labels(alert))]
        if not targeted:
            return False
        target = alert_labels(alert)
        for source in self.firing():
            if source.fingerprint == alert.fingerprint:
                continue
            labels = alert_labels(source)
            for rule in targeted:
                if match_all(rule.source_matchers, labels) and all(
                    labels.get(name, "") == target.get(name, "") for name in rule.equal
                ):
                    return True
        return False
