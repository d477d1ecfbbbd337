"""Input contracts: a real-user (RUM) API event and a synthetic check result.

These pydantic models are the one source of truth for what a valid message is.
The ingest stage validates whole batches with them, the backtest reads files
with them, and ``apiwatch schema rum|synthetic`` exports them as JSON Schema.

Timestamps are accepted as RFC 3339 strings or epoch milliseconds and are held
as timezone-aware UTC datetimes. A timestamp too far in the future is an error
(a clock or unit bug upstream); the allowed skew comes from the validation
context key ``max_future_skew_s`` and the reference time from ``now``, so the
same model validates identically in the stream and in a backtest of old files.

>>> e = RumEvent.model_validate({"timestamp": 1767225600000, "service": "shop",
...     "method": "get", "path": "/users/42?x=1", "status": 200,
...     "duration_ms": 12.5, "client_ip": "10.0.0.1"})
>>> e.method, e.path, e.route, e.environment, e.timestamp.isoformat()
('GET', '/users/42', '/users/{id}', 'production', '2026-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import ipaddress
import re
import time
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from apiwatch.models.routes import template_route

#: Earliest event time accepted: anything before is a unit or clock bug.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_EVENT_S = EARLIEST_EVENT_TIME.timestamp()
#: Default allowed clock skew into the future, in seconds.
DEFAULT_MAX_FUTURE_SKEW_S = 300.0

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
Method = Annotated[
    str,
    StringConstraints(
        to_upper=True, pattern=r"^(?i:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|CONNECT)$"
    ),
]
Country = Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")]
# Canonical dotted-quad IPv4 (no leading zeros): already in the form ipaddress would give.
IPV4_PATTERN = re.compile(
    r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
)


def normalise_ip(value: str) -> str:
    """Canonical text of an IPv4 or IPv6 address, or a ValueError saying what is wrong.

    >>> normalise_ip("2001:DB8::1"), normalise_ip("10.0.0.1")
    ('2001:db8::1', '10.0.0.1')
    """
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"client_ip {value[:64]!r} is not an IPv4 or IPv6 address") from None


ShortStr = Annotated[str, Field(min_length=1, max_length=256)]
Duration = Annotated[float, Field(ge=0, allow_inf_nan=False)]
EventTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "description": "epoch milliseconds"},
            ],
            "description": "Event time: RFC 3339, or epoch milliseconds "
            "(numbers below 2e10 are read as epoch seconds).",
        }
    ),
]


def check_event_time(value: datetime, info: ValidationInfo) -> datetime:
    """Read naive times as UTC and reject times that cannot be real event times."""
    return _check_event_time(value, info)[0]


def epoch_ms_of(ts: float) -> int:
    """Epoch milliseconds of a ``datetime.timestamp()``, exact (``int(ts * 1000)`` is not).

    >>> ts = datetime(2004, 4, 4, 3, 32, 19, 814_000, tzinfo=UTC).timestamp()
    >>> int(ts * 1000), epoch_ms_of(ts)
    (1081049539813, 1081049539814)
    """
    # Round to whole microseconds (what a datetime holds) before flooring to ms.
    return round(ts * 1_000_000) // 1000


def _check_event_time(value: datetime, info: ValidationInfo) -> tuple[datetime, float]:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():  # "+02:00": held as UTC, as the contract says
        value = value.astimezone(UTC)
    ts = value.timestamp()
    if ts < EARLIEST_EVENT_S:
        raise ValueError(
            f"timestamp {value.isoformat()} is before 2000-01-01: a unit or clock bug?"
        )
    ctx = info.context or {}
    now = ctx.get("now")
    now_s = float(now) if now is not None else time.time()
    skew = float(ctx.get("max_future_skew_s", DEFAULT_MAX_FUTURE_SKEW_S))
    if ts > now_s + skew:
        raise ValueError(f"timestamp {value.isoformat()} is more than {skew:.0f} s in the future")
    return value, ts


class RumEvent(BaseModel):
    """One real API call, as captured by an SDK, a middleware or an OTel collector.

    Per-field checks run inside pydantic-core where they can (types, ranges,
    patterns, upper-casing); what needs Python (time window, path clean-up,
    address syntax, route templating) runs once per event in one validator,
    because this model validates every raw event on the hot path.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    timestamp: EventTime
    service: ShortStr
    environment: ShortStr = "production"
    method: Method
    path: Annotated[str, Field(min_length=1, max_length=2048)]
    route: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    status: Annotated[int, Field(ge=100, le=599, strict=True)]
    duration_ms: Duration
    client_ip: Annotated[str, Field(min_length=2, max_length=64)]
    user_id: ShortStr | None = None
    credential_id: ShortStr | None = None
    user_agent: Annotated[str, Field(max_length=1024)] | None = None
    country: Country | None = None
    request_bytes: Annotated[int, Field(ge=0)] | None = None
    response_bytes: Annotated[int, Field(ge=0)] | None = None
    trace_id: ShortStr | None = None
    event_id: ShortStr | None = None

    @model_validator(mode="after")
    def _normalise(self, info: ValidationInfo) -> RumEvent:
        when, ts = _check_event_time(self.timestamp, info)
        if when is not self.timestamp:
            object.__setattr__(self, "timestamp", when)
        # Cached for the hot path: datetime.timestamp() is slow with pydantic's tzinfo.
        self.__dict__["epoch_ms"] = epoch_ms_of(ts)
        path = self.path
        # The contract says "no query string"; strip one rather than reject the
        # event, since many capture points hand over the raw request target.
        if "?" in path or "#" in path:
            path = path.split("?", 1)[0].split("#", 1)[0]
            object.__setattr__(self, "path", path)
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        ip = self.client_ip
        if not IPV4_PATTERN.match(ip):
            object.__setattr__(self, "client_ip", normalise_ip(ip))
        if self.route is None:
            object.__setattr__(self, "route", template_route(path))
        return self

    @cached_property
    def epoch_ms(self) -> int:
        """Event time in epoch milliseconds."""
        return epoch_ms_of(self.timestamp.timestamp())


class SyntheticStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"


class PhaseTimings(BaseModel):
    """Per-phase timings of one HTTP request, in milliseconds (each optional)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dns: Duration | None = None
    connect: Duration | None = None
    tls: Duration | None = None
    ttfb: Duration | None = None
    transfer: Duration | None = None


class AssertionResult(BaseModel):
    """One assertion of a step: what was expected, what came back."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: ShortStr
    passed: bool
    expected: Any = None
    actual: Any = None
    message: str | None = None


class SyntheticStep(BaseModel):
    """One HTTP call of a synthetic check run."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: ShortStr
    method: str
    url: Annotated[str, Field(min_length=1, max_length=4096)]
    route: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    status_code: Annotated[int, Field(ge=100, le=599, strict=True)] | None
    duration_ms: Duration
    timings: PhaseTimings | None = None
    assertions: list[AssertionResult] = Field(default_factory=list, max_length=256)
    error: Annotated[str, Field(max_length=4096)] | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {value!r}")
        return upper

    @model_validator(mode="after")
    def _derive_route(self) -> SyntheticStep:
        if self.route is None:
            object.__setattr__(self, "route", template_route(_url_path(self.url)))
        return self

    @property
    def passed(self) -> bool:
        return self.error is None and all(a.passed for a in self.assertions)


def _url_path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return path.split("?", 1)[0].split("#", 1)[0] or "/"


class SyntheticResult(BaseModel):
    """One run of a synthetic check from one location.

    ``service`` and ``environment`` are optional extras that let a synthetic
    incident be linked with RUM alerts on the same endpoint.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    check_id: ShortStr
    check_name: ShortStr
    run_id: ShortStr
    location: ShortStr
    timestamp: EventTime
    status: SyntheticStatus
    duration_ms: Duration
    steps: list[SyntheticStep] = Field(min_length=1, max_length=256)
    service: ShortStr | None = None
    environment: ShortStr = "production"

    _ts_check = field_validator("timestamp", mode="after")(check_event_time)

    @property
    def epoch_ms(self) -> int:
        return epoch_ms_of(self.timestamp.timestamp())

    @property
    def failed(self) -> bool:
        return self.status is not SyntheticStatus.PASSED


EventKind = Literal["rum", "synthetic"]


def kind_of(obj: dict[str, Any]) -> EventKind:
    """Tell a synthetic result from a RUM event by its fields.

    >>> kind_of({"check_id": "c", "steps": []}), kind_of({"path": "/"})
    ('synthetic', 'rum')
    """
    return "synthetic" if "check_id" in obj and "steps" in obj else "rum"
