"""Silences: matchers plus a time window, an author and a comment.

A silence mutes every alert all its matchers match while
``starts_at <= now < ends_at``. Expiring one sets ``ends_at`` to now, so the
record stays (compacted topic, key = id) and ``list`` can show it as expired.
Records carry ``updated_at``; the newer version of a silence always wins, so
replaying the topic in any order converges.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> s = Silence.create(["service=shop", "kind=~latency_.*"], ends_at=now + timedelta(hours=1),
...                    created_by="ana", comment="deploy", now=now)
>>> s.state(now), s.matches({"service": "shop", "kind": "latency_spike"}, now)
('active', True)
>>> gone = s.expire(now + timedelta(minutes=5))
>>> gone.state(now + timedelta(minutes=5)), gone.matches({"service": "shop", "kind": "latency_spike"}, now + timedelta(minutes=5))
('expired', False)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from apiwatch.models.alerts import Alert
from apiwatch.models.delivery.matchers import Matcher, MatcherField, alert_labels, match_all

SilenceState = Literal["pending", "active", "expired"]


class Silence(BaseModel):
    """One silence, as stored in the silences topic and served by the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    matchers: list[MatcherField] = Field(min_length=1)
    starts_at: datetime
    ends_at: datetime
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)
    updated_at: datetime

    @model_validator(mode="after")
    def _window(self) -> Silence:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at must not be before starts_at")
        return self

    @classmethod
    def create(
        cls,
        matchers: Sequence[str | Matcher],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        now: datetime,
        starts_at: datetime | None = None,
    ) -> Silence:
        return cls.model_validate(
            {
                "id": str(uuid.uuid4()),
                "matchers": list(matchers),
                "starts_at": starts_at or now,
                "ends_at": ends_at,
                "created_by": created_by,
                "comment": comment,
                "updated_at": now,
            }
        )

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and match_all(self.matchers, labels)

    def expire(self, now: datetime) -> Silence:
        """This silence ended at ``now`` (a pending one never starts)."""
        starts = min(self.starts_at, now)
        return self.model_copy(
            update={"starts_at": starts, "ends_at": min(self.ends_at, now), "updated_at": now}
        )


class Silences:
    """The set of known silences; a :class:`~apiwatch.models.delivery.inhibit.Muter`."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {}
        for silence in silences:
            self.upsert(silence)

    def upsert(self, silence: Silence) -> bool:
        """Keep ``silence`` unless a newer version is known; True if it was kept."""
        current = self._by_id.get(silence.id)
        if current is not None and current.updated_at > silence.updated_at:
            return False
        self._by_id[silence.id] = silence
        return True

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def all(self) -> list[Silence]:
        return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id))

    def mutes(self, alert: Alert, now: datetime) -> bool:
        labels = alert_labels(alert)
        return any(s.matches(labels, now) for s in self._by_id.values())


class SilenceRequest(BaseModel):
    """What a user sends to create a silence (API body, CLI flags): a window given as
    ``ends_at`` or as ``duration_s`` from the start.

    >>> from datetime import UTC
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> req = SilenceRequest(matchers=["service=shop"], duration_s=3600, created_by="ana",
    ...                      comment="maintenance")
    >>> req.to_silence(now).ends_at.isoformat()
    '2026-01-01T01:00:00+00:00'
    """

    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherField] = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration_s: float | None = Field(None, gt=0)
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceRequest:
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self

    def to_silence(self, now: datetime) -> Silence:
        starts = self.starts_at or now
        ends = self.ends_at or starts + timedelta(seconds=self.duration_s or 0.0)
        return Silence.create(
            self.matchers,
            starts_at=starts,
            ends_at=ends,
            created_by=self.created_by,
            comment=self.comment,
            now=now,
        )
