"""Turn a finding into an alert emission with a stable fingerprint and a deterministic id.

The fingerprint is built from the identity of what is watched (environment,
client kind and value; or the login route), never from what varies during an
incident (top route, counts), so every emission of one incident shares it.
The event id hashes fingerprint, transition and the incident's start, so a
replay of the same records carries the same idempotency key.

>>> from apiwatch.models.alerts import AlertKind, Observed
>>> from apiwatch.models.access.detectors.base import Finding
>>> f = Finding(AlertKind.PROBING, "3 sensitive paths requested", Observed(value=3,
...     window_s=300, sample_size=3), score=1.0)
>>> em = emission(f, "firing", {"environment": "production", "client_kind": "ip",
...     "client": "192.0.2.1"}, t_ms=60_000, started_ms=60_000, samples=["e1"])
>>> em.alert.summary, em.alert.labels["client"], em.event_id == emission(f, "firing",
...     dict(em.alert.labels), t_ms=60_000, started_ms=60_000).event_id
('ip 192.0.2.1 (production): 3 sensitive paths requested', '192.0.2.1', True)
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from apiwatch.models.access.detectors.base import Finding
from apiwatch.models.alerts import (
    Alert,
    AlertStatus,
    Evidence,
    Offender,
    Transition,
    fingerprint,
)
from apiwatch.models.monitor import Emission


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def who(labels: dict[str, str]) -> str:
    """How an alert names what it is about.

    >>> who({"environment": "qa", "service": "auth", "method": "POST", "route": "/login"})
    'POST /login on auth (qa)'
    """
    env = labels.get("environment", "")
    if "client" in labels:
        return f"{labels.get('client_kind', 'client')} {labels['client']} ({env})"
    return f"{labels.get('method', '')} {labels.get('route', '')} on {labels.get('service', '')} ({env})"


def emission(
    finding: Finding,
    transition: Transition,
    identity: dict[str, str],
    t_ms: int,
    started_ms: int,
    samples: list[str] | None = None,
    first_seen_ms: int | None = None,
    last_seen_ms: int | None = None,
) -> Emission:
    """Build the alert for ``finding``; ``identity`` alone makes the fingerprint."""
    fp = fingerprint(finding.kind.value, identity)
    labels = {**finding.labels, **identity}
    resolved = transition == "resolved"
    details = dict(finding.details)
    if first_seen_ms is not None:
        details["first_seen"] = _dt(first_seen_ms).isoformat()
    if last_seen_ms is not None:
        details["last_seen"] = _dt(last_seen_ms).isoformat()
    where = who(labels)
    alert = Alert(
        fingerprint=fp,
        kind=finding.kind,
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        severity=finding.severity,
        summary=f"{'Resolved: ' if resolved else ''}{where}: {finding.summary}",
        labels=labels,
        observed=finding.observed,
        expected=finding.expected,
        score=round(finding.score, 3),
        evidence=Evidence(
            sample_event_ids=list(finding.sample_event_ids or samples or []),
            top_offenders=[Offender(key=k, count=n) for k, n in finding.offenders],
            details=details,
        ),
        started_at=_dt(started_ms),
        resolved_at=_dt(t_ms) if resolved else None,
        sources=["rum"],
    )
    material = f"{fp}|{transition}|{started_ms}".encode()
    event_id = hashlib.blake2b(material, digest_size=16).hexdigest()
    return Emission(transition, alert, event_id, _dt(t_ms))
