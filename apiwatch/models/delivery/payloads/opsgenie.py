"""Opsgenie Alert API: create with ``alias`` = fingerprint, close by alias on resolve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from apiwatch.models.alerts import AlertEvent, AlertStatus, Severity
from apiwatch.models.delivery.payloads._text import observed_vs_expected, truncate

PRIORITY = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P5",
}


@dataclass(frozen=True)
class OpsgenieRequest:
    """A POST to ``path`` (relative to the API base URL) with a JSON ``body``."""

    path: str
    body: dict[str, Any]


def opsgenie_request(event: AlertEvent, *, tags: list[str]) -> OpsgenieRequest:
    """Create while firing, close when resolved; both address the alert by its alias.

    >>> from datetime import UTC, datetime
    >>> from apiwatch.models.alerts import Alert, AlertKind
    >>> a = Alert(fingerprint="ab12", kind=AlertKind.ERROR_SURGE, status=AlertStatus.RESOLVED,
    ...           severity=Severity.ERROR, summary="5xx", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> opsgenie_request(AlertEvent.emit(a, transition="resolved", source="/t"), tags=[]).path
    '/v2/alerts/ab12/close?identifierType=alias'
    """
    alert = event.data
    if alert.status is AlertStatus.RESOLVED:
        return OpsgenieRequest(
            path=f"/v2/alerts/{quote(alert.fingerprint, safe='')}/close?identifierType=alias",
            body={"source": "apiwatch", "note": f"resolved (event {event.id})"},
        )
    description = "\n".join(x for x in (alert.summary, observed_vs_expected(alert)) if x)
    return OpsgenieRequest(
        path="/v2/alerts",
        body={
            "message": truncate(alert.summary, 130),
            "alias": alert.fingerprint,
            "description": truncate(description, 15000),
            "tags": [*tags, alert.kind.value],
            "details": {**alert.labels, "kind": alert.kind.value, "event_id": event.id},
            "entity": alert.labels.get("service", ""),
            "source": "apiwatch",
            "priority": PRIORITY[alert.severity],
        },
    )
