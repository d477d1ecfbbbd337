"""The RUM hot path's decoder: straight from bytes to the columns bucket folding needs.

Validating every raw event into a pydantic :class:`~apiwatch.models.events.RumEvent`
costs about 6 µs, most of a worker's budget per event. The bucket path needs no
model objects, only columns (series key, event time, status, duration, event id),
so this decoder reads each message with a typed msgspec struct (constraints checked
in C) plus the few checks that need Python, and emits columns.

The pydantic model stays the one source of truth for what is valid: this decoder
only ever *accepts* what RumEvent accepts, with the same normalised values
(property-tested in ``tests/models/test_fastpath.py``). Anything it is not sure
of — a failed constraint, a string timestamp, an array message, an unusual
address — goes to RumEvent itself, which accepts it or gives the dead-letter
reason. So the fast path changes speed, never outcomes.

>>> fp = RumFastPath(max_bytes=10_000)
>>> ok = b'{"timestamp":1767225600000,"service":"s","method":"get","path":"/u/42?x=1","status":503,"duration_ms":1.5,"client_ip":"10.0.0.1"}'
>>> cols = fp.decode([ok, b"{oops"], context={"now": 1767225600})
>>> cols.keys, cols.ts_ms, cols.status, [r.reason.value for r in cols.rejected]
(['rum|production|s|GET|/u/{id}'], [1767225600000], [503], ['invalid_json'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from apiwatch.models.buckets import rum_series_key
from apiwatch.models.decode import BatchDecoder, Decoded, Rejected
from apiwatch.models.events import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    EARLIEST_EVENT_S,
    HTTP_METHODS,
    IPV4_PATTERN,
    RumEvent,
)
from apiwatch.models.routes import template_route

Short = Annotated[str, Meta(min_length=1, max_length=256)]

#: pydantic reads numbers up to this magnitude as epoch seconds, beyond as milliseconds.
_SECONDS_LIMIT = 2e10


class _RumWire(msgspec.Struct, frozen=True):
    """RumEvent's fields with the constraints msgspec can check in C (see RumEvent)."""

    timestamp: int
    service: Short
    method: str
    path: Annotated[str, Meta(min_length=1, max_length=2048)]
    status: Annotated[int, Meta(ge=100, le=599)]
    duration_ms: Annotated[float, Meta(ge=0)]
    client_ip: Annotated[str, Meta(min_length=2, max_length=64)]
    environment: Short = "production"
    route: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    user_id: Short | None = None
    credential_id: Short | None = None
    user_agent: Annotated[str, Meta(max_length=1024)] | None = None
    country: str | None = None
    request_bytes: Annotated[int, Meta(ge=0)] | None = None
    response_bytes: Annotated[int, Meta(ge=0)] | None = None
    trace_id: Short | None = None
    event_id: Short | None = None


@dataclass(slots=True)
class RumColumns:
    """Valid events as columns, the index of the message each came from, and rejects."""

    keys: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    event_ids: list[str | None] = field(default_factory=list)
    source_index: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @classmethod
    def of_events(cls, decoded: Decoded[RumEvent]) -> RumColumns:
        """Columns of events already validated as models (kept in source order)."""
        out = cls(rejected=list(decoded.rejected))
        for e, i in zip(decoded.events, decoded.source_index, strict=True):
            key = rum_series_key(e.environment, e.service, e.method, e.route or e.path)
            out.add(key, e.epoch_ms, e.status, e.duration_ms, e.event_id, i)
        return out

    def add(
        self, key: str, ts_ms: int, status: int, duration: float, eid: str | None, i: int
    ) -> None:
        self.keys.append(key)
        self.ts_ms.append(ts_ms)
        self.status.append(status)
        self.duration_ms.append(duration)
        self.event_ids.append(eid)
        self.source_index.append(i)


class RumFastPath:
    """Decode raw RUM messages into columns; RumEvent decides whatever this is unsure of."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._decoder = msgspec.json.Decoder(_RumWire)
        self._slow = BatchDecoder(RumEvent, max_bytes)

    def decode(self, values: Sequence[bytes | None], context: dict[str, Any]) -> RumColumns:
        out = RumColumns()
        now = context.get("now")
        limit = (float(now) if now is not None else time.time()) + float(
            context.get("max_future_skew_s", DEFAULT_MAX_FUTURE_SKEW_S)
        )
        unsure: list[int] = []
        decode = self._decoder.decode
        for i, value in enumerate(values):
            if value is None or len(value) > self.max_bytes:
                unsure.append(i)
                continue
            try:
                w = decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError):
                # RecursionError: deeply nested JSON, even in an unknown field.
                unsure.append(i)
                continue
            row = self._row(w, limit)
            if row is None:
                unsure.append(i)
                continue
            out.add(*row, i)
        if unsure:
            self._decide(values, unsure, context, out)
        return out

    @staticmethod
    def _row(w: _RumWire, limit_s: float) -> tuple[str, int, int, float, str | None] | None:
        """The columns of one wire event, or None when RumEvent must decide."""
        ts = w.timestamp
        ms = ts if abs(ts) > _SECONDS_LIMIT else ts * 1000
        # A millisecond's margin at both bounds: right at a limit, RumEvent decides.
        if ms <= EARLIEST_EVENT_S * 1000 + 1 or ms >= limit_s * 1000 - 1:
            return None
        method = w.method.upper()
        if method not in HTTP_METHODS or not math.isfinite(w.duration_ms):
            return None
        path = w.path
        if "?" in path or "#" in path:
            path = path.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith("/") or not IPV4_PATTERN.match(w.client_ip):
            return None
        c = w.country
        if c is not None and not (len(c) == 2 and c.isascii() and c.isalpha()):
            return None
        route = w.route if w.route is not None else template_route(path)
        key = rum_series_key(w.environment, w.service, method, route)
        return key, ms, w.status, w.duration_ms, w.event_id

    def _decide(
        self,
        values: Sequence[bytes | None],
        unsure: list[int],
        context: dict[str, Any],
        out: RumColumns,
    ) -> None:
        decided = self._slow.decode([values[i] for i in unsure], context)
        for r in decided.rejected:
            out.rejected.append(Rejected(unsure[r.index], r.reason, r.detail))
        for e, j in zip(decided.events, decided.source_index, strict=True):
            key = rum_series_key(e.environment, e.service, e.method, e.route or e.path)
            out.add(key, e.epoch_ms, e.status, e.duration_ms, e.event_id, unsure[j])
        if decided.rejected or len(unsure) > 1:
            # Keep the batch in source order: folding does not need it, evidence reads better.
            order = sorted(range(len(out.source_index)), key=out.source_index.__getitem__)
            for name in ("keys", "ts_ms", "status", "duration_ms", "event_ids", "source_index"):
                col = getattr(out, name)
                setattr(out, name, [col[k] for k in order])
