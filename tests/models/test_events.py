"""RumEvent and SyntheticResult: the input contract, field by field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from apiwatch.models.events import (
    RumEvent,
    SyntheticResult,
    SyntheticStatus,
    kind_of,
)

FAST = settings(max_examples=100, deadline=None)
NOW_S = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW_MS = NOW_S * 1000
CTX: dict[str, Any] = {"now": NOW_S}


def rum(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": NOW_MS - 1_000,
        "service": "shop",
        "method": "GET",
        "path": "/users/42",
        "status": 200,
        "duration_ms": 12.5,
        "client_ip": "10.0.0.1",
    }
    base.update(over)
    return base


def rum_event(ctx: dict[str, Any] | None = None, **over: Any) -> RumEvent:
    return RumEvent.model_validate(rum(**over), context=CTX if ctx is None else ctx)


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return [
        (".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.value.errors(include_url=False)
    ]


def rejected(data: dict[str, Any], ctx: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        RumEvent.model_validate(data, context=CTX if ctx is None else ctx)
    return errors_of(exc)


# -- RumEvent: required fields and defaults ---------------------------------------

RUM_REQUIRED = ["timestamp", "service", "method", "path", "status", "duration_ms", "client_ip"]


@pytest.mark.parametrize("name", RUM_REQUIRED)
def test_each_missing_required_field_is_named(name: str) -> None:
    data = rum()
    del data[name]
    assert rejected(data) == [(name, "Field required")]


def test_minimal_event_gets_defaults() -> None:
    e = rum_event()
    assert e.environment == "production"
    assert e.route == "/users/{id}"
    assert e.user_id is None and e.country is None and e.event_id is None


def test_unknown_fields_are_ignored() -> None:
    assert not hasattr(rum_event(extra_field="x"), "extra_field")


# -- status ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 200, 404, 599])
def test_status_in_range(status: int) -> None:
    assert rum_event(status=status).status == status


@pytest.mark.parametrize("status", [99, 0, -1, 600, 1000])
def test_status_out_of_range(status: int) -> None:
    assert [loc for loc, _ in rejected(rum(status=status))] == ["status"]


@pytest.mark.parametrize("status", ["200", 200.0, True, None, "OK"])
def test_status_must_be_a_real_integer(status: object) -> None:
    assert [loc for loc, _ in rejected(rum(status=status))] == ["status"]


def test_status_as_string_is_rejected_in_json_too() -> None:
    raw = (
        b'{"timestamp":1767225599000,"service":"s","method":"GET","path":"/a",'
        b'"status":"200","duration_ms":1,"client_ip":"1.2.3.4"}'
    )
    with pytest.raises(ValidationError) as exc:
        RumEvent.model_validate_json(raw, context=CTX)
    assert [loc for loc, _ in errors_of(exc)] == ["status"]


# -- durations -------------------------------------------------------------------


@pytest.mark.parametrize("duration", [-0.001, -5, math.nan, math.inf, -math.inf, "fast"])
def test_bad_durations_are_rejected(duration: object) -> None:
    assert [loc for loc, _ in rejected(rum(duration_ms=duration))] == ["duration_ms"]


@pytest.mark.parametrize("duration", [0, 0.0, 1e-9, 59_999.5, 3_600_000])
def test_good_durations(duration: float) -> None:
    assert rum_event(duration_ms=duration).duration_ms == duration


@pytest.mark.parametrize("field", ["request_bytes", "response_bytes"])
def test_byte_counts_are_non_negative(field: str) -> None:
    assert RumEvent.model_validate(rum(**{field: 0}), context=CTX).model_dump()[field] == 0
    assert [loc for loc, _ in rejected(rum(**{field: -1}))] == [field]


# -- timestamps ------------------------------------------------------------------


def test_future_timestamp_within_skew_is_accepted() -> None:
    e = rum_event({"now": NOW_S, "max_future_skew_s": 60}, timestamp=NOW_MS + 59_000)
    assert e.epoch_ms == NOW_MS + 59_000


def test_future_timestamp_beyond_skew_is_rejected() -> None:
    errs = rejected(rum(timestamp=NOW_MS + 61_000), {"now": NOW_S, "max_future_skew_s": 60})
    assert len(errs) == 1
    assert errs[0][1].startswith("Value error, timestamp 2026-01-01T00:01:01+00:00")
    assert "more than 60 s in the future" in errs[0][1]


def test_default_skew_is_five_minutes() -> None:
    rum_event({"now": NOW_S}, timestamp=NOW_MS + 299_000)
    errs = rejected(rum(timestamp=NOW_MS + 301_000), {"now": NOW_S})
    assert "in the future" in errs[0][1]


def test_skew_follows_the_context_not_the_wall_clock() -> None:
    # An old file replayed with its own "now" validates the same as in the stream.
    old_now = 1_000_000_000  # 2001-09-09
    rum_event({"now": old_now}, timestamp=old_now * 1000)
    assert "in the future" in rejected(rum(timestamp=NOW_MS), {"now": old_now})[0][1]


@pytest.mark.parametrize(
    "ts", [946_684_799_999, 0, 1, "1999-12-31T23:59:59Z", "1970-01-01T00:00:00+00:00"]
)
def test_timestamps_before_2000_are_rejected(ts: object) -> None:
    assert "before 2000-01-01" in rejected(rum(timestamp=ts))[0][1]


def test_first_millisecond_of_2000_is_accepted() -> None:
    assert rum_event(timestamp=946_684_800_000).epoch_ms == 946_684_800_000


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T19:30:00-04:30", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T23:59:59.250Z", datetime(2025, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC)),
        ("2025-12-31T23:00:00", datetime(2025, 12, 31, 23, tzinfo=UTC)),  # naive = UTC
        (NOW_MS, datetime(2026, 1, 1, tzinfo=UTC)),  # epoch ms
        (NOW_S, datetime(2026, 1, 1, tzinfo=UTC)),  # below 2e10: epoch seconds
        (str(NOW_MS), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_are_normalised_to_utc(ts: object, expected: datetime) -> None:
    e = rum_event(timestamp=ts)
    assert e.timestamp == expected
    assert e.timestamp.utcoffset() == timedelta(0)
    assert e.timestamp.isoformat() == expected.isoformat()
    assert e.epoch_ms == int(expected.timestamp() * 1000)


@FAST
@given(st.integers(min_value=946_684_800_000, max_value=NOW_MS + 300_000))
def test_epoch_ms_is_exactly_the_given_milliseconds(ms: int) -> None:
    e = rum_event(timestamp=ms)
    assert e.epoch_ms == ms
    assert e.timestamp == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


@FAST
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 2),
        max_value=datetime(2025, 12, 31),
        timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)
def test_rfc3339_with_any_offset_gives_the_same_instant_in_utc(when: datetime) -> None:
    e = rum_event(timestamp=when.isoformat())
    assert e.timestamp == when
    assert e.timestamp.utcoffset() == timedelta(0)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert e.epoch_ms == (when - epoch) // timedelta(milliseconds=1)


# -- path, route, method, country, ip -------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/42?x=1", "/users/42"),
        ("/users/42?x=1&y=?", "/users/42"),
        ("/users/42#frag", "/users/42"),
        ("/search?q=a#b", "/search"),
        ("/", "/"),
    ],
)
def test_query_strings_and_fragments_are_stripped(path: str, expected: str) -> None:
    e = rum_event(path=path)
    assert e.path == expected
    assert "?" not in (e.route or "") and "#" not in (e.route or "")


@pytest.mark.parametrize("path", ["users/42", "https://x.example/a", "?q=1", "*"])
def test_path_must_start_with_a_slash(path: str) -> None:
    errs = rejected(rum(path=path))
    assert any("path must start with '/'" in msg for _, msg in errs)


def test_empty_path_is_rejected() -> None:
    assert [loc for loc, _ in rejected(rum(path=""))] == ["path"]


def test_route_is_derived_when_absent_and_kept_when_given() -> None:
    assert rum_event(path="/orders/17/items/2026-01-01").route == "/orders/{id}/items/{date}"
    assert rum_event(path="/orders/17", route="/orders/:order").route == "/orders/:order"


@pytest.mark.parametrize(
    ("method", "expected"), [("get", "GET"), ("Post", "POST"), ("PATCH", "PATCH")]
)
def test_method_is_upper_cased(method: str, expected: str) -> None:
    assert rum_event(method=method).method == expected


@pytest.mark.parametrize("method", ["FETCH", "", "GET ", "G3T"])
def test_unknown_methods_are_rejected(method: str) -> None:
    assert [loc for loc, _ in rejected(rum(method=method))] == ["method"]


def test_country_is_upper_cased_and_two_letters() -> None:
    assert rum_event(country="de").country == "DE"
    for bad in ["DEU", "d", "1A", ""]:
        assert [loc for loc, _ in rejected(rum(country=bad))] == ["country"]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("FE80::0001", "fe80::1"),
        ("::1", "::1"),
    ],
)
def test_ips_are_canonical(ip: str, expected: str) -> None:
    assert rum_event(client_ip=ip).client_ip == expected


@pytest.mark.parametrize(
    "ip",
    ["999.1.1.1", "10.0.0", "10.0.0.1/24", "localhost", "010.0.0.1", "2001:db8::g", "1.2.3.4 "],
)
def test_bad_ips_are_rejected(ip: str) -> None:
    errs = rejected(rum(client_ip=ip))
    assert len(errs) == 1 and "is not an IPv4 or IPv6 address" in errs[0][1]


@FAST
@given(st.ip_addresses())
def test_any_ip_is_accepted_in_its_canonical_form(ip: Any) -> None:
    assert rum_event(client_ip=str(ip)).client_ip == str(ip)
    if ip.version == 6:
        assert rum_event(client_ip=ip.exploded.upper()).client_ip == str(ip)


def test_events_are_frozen() -> None:
    e = rum_event()
    with pytest.raises(ValidationError):
        e.status = 500  # type: ignore[misc]


# -- SyntheticResult -----------------------------------------------------------------


def step(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "get cart",
        "method": "get",
        "url": "https://shop.example/cart/42?x=1",
        "status_code": 200,
        "duration_ms": 80.0,
    }
    base.update(over)
    return base


def synthetic(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "check_id": "c1",
        "check_name": "cart",
        "run_id": "r1",
        "location": "eu-west",
        "timestamp": "2025-12-31T23:00:00Z",
        "status": "passed",
        "duration_ms": 80.0,
        "steps": [step()],
    }
    base.update(over)
    return base


def synthetic_result(**over: Any) -> SyntheticResult:
    return SyntheticResult.model_validate(synthetic(**over), context=CTX)


def synthetic_rejected(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        SyntheticResult.model_validate(data, context=CTX)
    return errors_of(exc)


SYN_REQUIRED = [
    "check_id",
    "check_name",
    "run_id",
    "location",
    "timestamp",
    "status",
    "duration_ms",
    "steps",
]


@pytest.mark.parametrize("name", SYN_REQUIRED)
def test_synthetic_missing_required_field_is_named(name: str) -> None:
    data = synthetic()
    del data[name]
    assert synthetic_rejected(data) == [(name, "Field required")]


@pytest.mark.parametrize("name", ["name", "method", "url", "status_code", "duration_ms"])
def test_synthetic_step_missing_field_is_named(name: str) -> None:
    s = step()
    del s[name]
    assert synthetic_rejected(synthetic(steps=[s])) == [(f"steps.0.{name}", "Field required")]


def test_steps_are_required_and_not_empty() -> None:
    assert [loc for loc, _ in synthetic_rejected(synthetic(steps=[]))] == ["steps"]


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("https://shop.example/cart/42?x=1", "/cart/{id}"),
        ("https://shop.example", "/"),
        ("https://shop.example?q=1", "/"),
        (
            "http://api.example:8080/v2/users/7f3e9a1c-5b2d-4e8f-9a6b-1c2d3e4f5a6b#x",
            "/v2/users/{uuid}",
        ),
        ("/relative/17", "/relative/{id}"),
    ],
)
def test_step_route_is_derived_from_the_url(url: str, route: str) -> None:
    assert synthetic_result(steps=[step(url=url)]).steps[0].route == route


def test_step_route_given_is_kept_and_method_upper_cased() -> None:
    s = synthetic_result(steps=[step(route="/cart/:id", method="post")]).steps[0]
    assert s.route == "/cart/:id" and s.method == "POST"
    assert [loc for loc, _ in synthetic_rejected(synthetic(steps=[step(method="FETCH")]))] == [
        "steps.0.method"
    ]


@pytest.mark.parametrize("status", list(SyntheticStatus))
def test_synthetic_status_enum(status: SyntheticStatus) -> None:
    r = synthetic_result(status=status.value)
    assert r.status is status
    assert r.failed is (status is not SyntheticStatus.PASSED)


@pytest.mark.parametrize("status", ["PASSED", "ok", "", 1])
def test_synthetic_status_outside_enum_is_rejected(status: object) -> None:
    assert [loc for loc, _ in synthetic_rejected(synthetic(status=status))] == ["status"]


def test_status_code_may_be_null_but_not_out_of_range() -> None:
    r = synthetic_result(status="timeout", steps=[step(status_code=None, error="timed out")])
    assert r.steps[0].status_code is None and not r.steps[0].passed
    assert [loc for loc, _ in synthetic_rejected(synthetic(steps=[step(status_code=600)]))] == [
        "steps.0.status_code"
    ]


def test_step_passed_needs_every_assertion() -> None:
    ok = {"kind": "status", "passed": True, "expected": 200, "actual": 200}
    bad = {"kind": "body", "passed": False, "expected": "x", "actual": "y"}
    assert synthetic_result(steps=[step(assertions=[ok])]).steps[0].passed
    assert not synthetic_result(steps=[step(assertions=[ok, bad])]).steps[0].passed


def test_synthetic_timestamps_are_checked_and_normalised() -> None:
    r = synthetic_result(timestamp="2026-01-01T01:00:00+01:00")
    assert r.timestamp == datetime(2026, 1, 1, tzinfo=UTC)
    assert r.timestamp.utcoffset() == timedelta(0)
    assert r.epoch_ms == NOW_MS
    errs = synthetic_rejected(synthetic(timestamp=NOW_MS + 3_600_000))
    assert errs[0][0] == "timestamp" and "in the future" in errs[0][1]
    errs = synthetic_rejected(synthetic(timestamp="1999-01-01T00:00:00Z"))
    assert errs[0][0] == "timestamp" and "before 2000" in errs[0][1]


@pytest.mark.parametrize("duration", [-1, math.nan, math.inf])
def test_synthetic_durations(duration: float) -> None:
    assert [loc for loc, _ in synthetic_rejected(synthetic(duration_ms=duration))] == [
        "duration_ms"
    ]
    assert [
        loc for loc, _ in synthetic_rejected(synthetic(steps=[step(timings={"dns": duration})]))
    ] == ["steps.0.timings.dns"]


def test_kind_of_tells_the_contracts_apart() -> None:
    assert kind_of(synthetic()) == "synthetic"
    assert kind_of(rum()) == "rum"
