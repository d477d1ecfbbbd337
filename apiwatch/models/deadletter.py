"""Dead letter: a message apiwatch could not accept, kept whole with why and where from.

The original bytes travel base64-encoded so nothing is lost, whatever they held.
Up to :data:`MAX_PAYLOAD_BYTES` of them: a larger message (an oversized one, say
10 MB) keeps its first bytes, ``payload_size`` gives its full size, and
``origin`` says where the whole message is. Kept whole, its dead letter would be
too large to produce, and failing to dead-letter it would stop the stage.

>>> dl = DeadLetter.build(b"\\xffnot json", reason=Reason.INVALID_JSON, detail="bad byte",
...     topic="apiwatch.rum.events", partition=0, offset=7)
>>> dl.original_bytes()
b'\\xffnot json'
>>> dl.origin.offset, dl.reason.value
(7, 'invalid_json')
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

PREVIEW_CHARS = 512
#: Payload bytes kept in a dead letter (base64 makes them 4/3 as large; producers
#: refuse requests over 1 MiB by default).
MAX_PAYLOAD_BYTES = 512 * 1024


class Reason(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    NOT_AN_OBJECT = "not_an_object"
    OVERSIZED = "oversized"
    UNSUPPORTED = "unsupported"


class SourceRecord(Protocol):
    """What a consumed message says of itself (an aiokafka ``ConsumerRecord`` fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


class Origin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    """One rejected message: reason code, a human-readable detail, origin, original bytes."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    detail: str
    origin: Origin
    payload_b64: str = Field(
        description=f"The payload, its first {MAX_PAYLOAD_BYTES} bytes if larger."
    )
    payload_size: int = Field(description="Size of the whole payload in bytes.")
    preview: str = Field(description="First characters of the payload, decoded leniently.")
    received_at: datetime

    @classmethod
    def of_record(cls, record: SourceRecord, *, reason: Reason, detail: str) -> DeadLetter:
        """The dead letter of a consumed message, its origin taken from the record."""
        return cls.build(
            record.value or b"",
            reason=reason,
            detail=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            timestamp_ms=record.timestamp,
        )

    @classmethod
    def build(
        cls,
        payload: bytes,
        *,
        reason: Reason,
        detail: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> DeadLetter:
        return cls(
            reason=reason,
            detail=detail[:2000],
            origin=Origin(
                topic=topic,
                partition=partition,
                offset=offset,
                key_b64=base64.b64encode(key).decode() if key is not None else None,
                timestamp_ms=timestamp_ms,
            ),
            payload_b64=base64.b64encode(payload[:MAX_PAYLOAD_BYTES]).decode(),
            payload_size=len(payload),
            preview=payload[:PREVIEW_CHARS].decode("utf-8", errors="replace"),
            received_at=datetime.now(tz=UTC),
        )

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.payload_b64)
