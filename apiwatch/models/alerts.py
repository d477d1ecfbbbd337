"""Output contract: an alert as a CloudEvents 1.0 JSON object.

Every emission is one :class:`AlertEvent`; ``data`` is an :class:`Alert`.
``subject`` and ``data.fingerprint`` stay the same for the whole incident, so
consumers key and deduplicate on it; ``id`` is unique per emission and is the
idempotency key for receivers.

>>> a = Alert(fingerprint="f1", kind=AlertKind.LATENCY_SPIKE, status=AlertStatus.FIRING,
...     severity=Severity.CRITICAL, summary="p95 of GET /users/{id} is 900 ms",
...     labels={"service": "shop"}, started_at=datetime(2026, 1, 1, tzinfo=UTC),
...     sources=["rum"])
>>> ev = AlertEvent.emit(a, transition="firing", source="/apiwatch/test")
>>> ev.type, ev.subject, ev.specversion
('io.apiwatch.alert.firing', 'f1', '1.0')
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ALERT_TYPE_PREFIX = "io.apiwatch.alert."


class AlertKind(StrEnum):
    LATENCY_SPIKE = "latency_spike"
    ERROR_SURGE = "error_surge"
    TRAFFIC_ANOMALY = "traffic_anomaly"
    SYNTHETIC_FAILURE = "synthetic_failure"
    SYNTHETIC_LATENCY = "synthetic_latency"
    SLO_BURN = "slo_burn"
    BRUTE_FORCE = "brute_force"
    CREDENTIAL_STUFFING = "credential_stuffing"
    ENUMERATION = "enumeration"
    SCRAPING = "scraping"
    PROBING = "probing"
    TOKEN_SHARING = "token_sharing"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    ANOMALOUS_CLIENT = "anomalous_client"
    ANOMALOUS_VALUE = "anomalous_value"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """Ordered from most to least urgent; maps onto PagerDuty's four levels."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


Transition = Literal["firing", "updated", "resolved"]
Source = Literal["rum", "synthetic"]


class Observed(BaseModel):
    """What was measured: the value, over which window, from how many samples."""

    model_config = ConfigDict(extra="forbid")

    value: float
    unit: str = ""
    window_s: float
    sample_size: int


class Expected(BaseModel):
    """What the baseline expected, with the bounds the observation crossed."""

    model_config = ConfigDict(extra="forbid")

    value: float
    lower: float
    upper: float


class Offender(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    count: int


class Evidence(BaseModel):
    """Why the alert fired: sample event ids, top offenders, detector-specific facts."""

    model_config = ConfigDict(extra="forbid")

    sample_event_ids: list[str] = Field(default_factory=list)
    top_offenders: list[Offender] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class Alert(BaseModel):
    """The ``data`` of an alert CloudEvent."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    kind: AlertKind
    status: AlertStatus
    severity: Severity
    summary: str
    labels: dict[str, str] = Field(default_factory=dict)
    observed: Observed | None = None
    expected: Expected | None = None
    score: float = 0.0
    evidence: Evidence = Field(default_factory=Evidence)
    started_at: datetime
    resolved_at: datetime | None = None
    sources: list[Source] = Field(default_factory=list)
    related: list[str] = Field(
        default_factory=list, description="Fingerprints of alerts on the same endpoint."
    )


class AlertEvent(BaseModel):
    """CloudEvents 1.0 structured-mode JSON envelope around an :class:`Alert`."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: Alert

    @property
    def transition(self) -> Transition:
        suffix = self.type.removeprefix(ALERT_TYPE_PREFIX)
        if suffix not in ("firing", "updated", "resolved"):
            raise ValueError(f"not an apiwatch alert type: {self.type!r}")
        return suffix  # type: ignore[return-value]

    @classmethod
    def emit(
        cls,
        alert: Alert,
        *,
        transition: Transition,
        source: str,
        time: datetime | None = None,
        event_id: str | None = None,
    ) -> AlertEvent:
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=ALERT_TYPE_PREFIX + transition,
            time=time or datetime.now(tz=UTC),
            subject=alert.fingerprint,
            data=alert,
        )


def fingerprint(kind: str, labels: dict[str, str]) -> str:
    """Stable incident key for (kind, series): the same inputs always give the same id.

    >>> fingerprint("latency_spike", {"service": "a", "route": "/x"})
    '332ebf910c321c6f'
    """
    material = kind + "\x00" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.blake2b(material.encode(), digest_size=8).hexdigest()
