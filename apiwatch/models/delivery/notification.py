"""Records of the delivery stage: routed alerts, notifications, log entries, dead letters.

A :class:`Notification` is the unit of work of the send and retry stages: one
message for one receiver about the alerts of one group. It travels whole
through the retry topics (receiver *name* only: secrets stay in configuration),
and keeps its ``id`` across retries so receivers can drop duplicates.

>>> from datetime import UTC, datetime
>>> notification_id(["e2", "e1"]) == notification_id(["e1", "e2"]), notification_id(["e1"])
(True, 'e1')
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from apiwatch.models.alerts import AlertEvent, AlertStatus

_NAMESPACE = uuid.UUID("5b0c3e0e-6a57-4f55-9d0e-6170697761a1")


def notification_id(event_ids: list[str], repeat: int = 0) -> str:
    """The idempotency key of a notification.

    A notification about one alert event uses that event's id, as the alert
    contract promises; one about several uses a name-based UUID of their ids.
    ``repeat`` counts reminders (``repeat_interval``) of the same content, which
    must not look like duplicates to the receiver.
    """
    if len(event_ids) == 1 and repeat == 0:
        return event_ids[0]
    material = ",".join(sorted(event_ids)) + (f"#{repeat}" if repeat else "")
    return str(uuid.uuid5(_NAMESPACE, material))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutedAlert(_Record):
    """An alert on one route, keyed by its group so that a group lives on one partition."""

    route_id: str
    group_key: str
    group_labels: dict[str, str]
    event: AlertEvent


class Notification(_Record):
    """One message to one receiver about the alerts of one group."""

    id: str
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[AlertEvent] = Field(min_length=1)
    created_at: datetime
    attempt: int = Field(1, ge=1, description="Number of the next attempt (1 = first send).")
    not_before: datetime | None = None
    last_error: str | None = None

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if self.firing else "resolved"

    @property
    def firing(self) -> list[AlertEvent]:
        return [e for e in self.alerts if e.data.status is AlertStatus.FIRING]

    @property
    def resolved(self) -> list[AlertEvent]:
        return [e for e in self.alerts if e.data.status is AlertStatus.RESOLVED]

    def common_labels(self) -> dict[str, str]:
        """Labels every alert of the notification shares."""
        first, *rest = (e.data.labels for e in self.alerts)
        return {k: v for k, v in first.items() if all(o.get(k) == v for o in rest)}


class Outcome(StrEnum):
    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"


class LogEntry(_Record):
    """One line of the notifications log: what was sent where, when, and how it went."""

    at: datetime
    notification_id: str
    receiver: str
    receiver_type: str
    group_key: str
    status: Literal["firing", "resolved"]
    fingerprints: list[str]
    event_ids: list[str]
    attempt: int
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    retry_at: datetime | None = None


class DeadReason(StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    NOT_RETRYABLE = "not_retryable"
    UNKNOWN_RECEIVER = "unknown_receiver"


class NotificationDeadLetter(_Record):
    """A notification that will not be delivered, with why (secrets redacted)."""

    reason: DeadReason
    error: str
    attempts: int
    receiver: str
    failed_at: datetime
    notification: Notification
