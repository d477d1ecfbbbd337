"""PagerDuty Events API v2: one event per alert, ``dedup_key`` = the alert fingerprint.

The fingerprint is stable for the whole incident, so the trigger and the later
resolve address the same PagerDuty alert, and re-sent triggers are merged.
"""

from __future__ import annotations

from typing import Any

from apiwatch.models.alerts import AlertEvent, AlertStatus, Severity
from apiwatch.models.delivery.payloads._text import observed_vs_expected, truncate

#: apiwatch severities onto PagerDuty's (the names happen to be PagerDuty's four).
SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}


def pagerduty_event(
    event: AlertEvent, routing_key: str, *, client: str, client_url: str | None
) -> dict[str, Any]:
    """The Events v2 body for one alert: ``trigger`` while firing, ``resolve`` after."""
    alert = event.data
    if alert.status is AlertStatus.RESOLVED:
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
        }
    details: dict[str, Any] = {
        "kind": alert.kind.value,
        "labels": alert.labels,
        "score": alert.score,
        "event_id": event.id,
        "started_at": alert.started_at.isoformat(),
    }
    comparison = observed_vs_expected(alert)
    if comparison:
        details["observed_vs_expected"] = comparison
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": truncate(alert.summary, 1024),
            "source": alert.labels.get("service") or event.source,
            "severity": SEVERITY[alert.severity],
            "timestamp": event.time.isoformat(),
            "component": alert.labels.get("route") or alert.labels.get("check"),
            "group": alert.labels.get("service"),
            "class": alert.kind.value,
            "custom_details": details,
        },
        "client": client,
    }
    if client_url:
        body["client_url"] = client_url
    return body
