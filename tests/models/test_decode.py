"""BatchDecoder: the fast batch path, the per-message fallback, and a reason for every reject."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import from_json

from apiwatch.models.deadletter import Reason
from apiwatch.models.decode import BatchDecoder, Decoded
from apiwatch.models.events import RumEvent, SyntheticResult

NOW_S = 1_767_225_600
CTX: dict[str, Any] = {"now": NOW_S}
MAX_BYTES = 2_000
FAST = settings(max_examples=60, deadline=None)


def event(i: int = 0, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": NOW_S * 1000 - 1_000 * (i % 500),
        "service": "shop",
        "method": "GET",
        "path": f"/items/{i}",
        "status": 200 + (i % 4) * 100,
        "duration_ms": 1.5 * (i % 97),
        "client_ip": f"10.0.{i % 256}.{(i * 7) % 256}",
    }
    base.update(over)
    return base


def msg(obj: object) -> bytes:
    return orjson.dumps(obj)


def decoder() -> BatchDecoder[RumEvent]:
    return BatchDecoder(RumEvent, max_bytes=MAX_BYTES)


def reasons(out: Decoded[Any]) -> list[tuple[int, Reason]]:
    return [(r.index, r.reason) for r in out.rejected]


def one_by_one(values: list[bytes | None]) -> Decoded[RumEvent]:
    """The reference: each message decoded in a batch of its own."""
    dec = decoder()
    out: Decoded[RumEvent] = Decoded()
    for i, v in enumerate(values):
        single = dec.decode([v], CTX)
        out.events.extend(single.events)
        out.source_index.extend(i for _ in single.source_index)
        for r in single.rejected:
            r.index = i
            out.rejected.append(r)
    return out


# -- the two paths agree ------------------------------------------------------------


def test_fast_path_and_fallback_give_identical_events() -> None:
    good = [msg(event(i)) for i in range(50)]
    fast = decoder().decode(good, CTX)
    assert fast.source_index == list(range(50)) and not fast.rejected
    # A tombstone at the end sends the whole batch down the per-message path.
    slow = decoder().decode([*good, None], CTX)
    assert slow.events == fast.events
    assert slow.source_index == fast.source_index
    assert reasons(slow) == [(50, Reason.NOT_AN_OBJECT)]
    assert [e.epoch_ms for e in slow.events] == [e.epoch_ms for e in fast.events]
    assert [e.route for e in fast.events] == ["/items/{id}"] * 50


def test_one_bad_message_does_not_cost_the_good_ones() -> None:
    values: list[bytes | None] = [msg(event(i)) for i in range(10)]
    values[3] = msg(event(3, status=700))
    values[7] = b'{"timestamp": oops'
    out = decoder().decode(values, CTX)
    assert out.source_index == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [e.path for e in out.events] == [f"/items/{i}" for i in out.source_index]
    assert reasons(out) == [(3, Reason.INVALID_EVENT), (7, Reason.INVALID_JSON)]
    assert out.rejected[0].detail.startswith("status: Input should be less than or equal to 599")


# -- one reason per reject ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"{oops", Reason.INVALID_JSON, "not JSON"),
        (b"", Reason.INVALID_JSON, "not JSON"),
        (b"\xff\xfe", Reason.INVALID_JSON, "not JSON"),
        (msg(event()) + b" trailing", Reason.INVALID_JSON, "not JSON"),
        (b"[]", Reason.NOT_AN_OBJECT, "got an empty array"),
        (b"42", Reason.NOT_AN_OBJECT, "got int"),
        (b'"text"', Reason.NOT_AN_OBJECT, "got str"),
        (b"null", Reason.NOT_AN_OBJECT, "got NoneType"),
        (b"[1, 2]", Reason.NOT_AN_OBJECT, "got list"),
        (msg([event(), 3]), Reason.NOT_AN_OBJECT, "got list"),
        (None, Reason.NOT_AN_OBJECT, "tombstone"),
        (b"{" + b" " * MAX_BYTES + b"}", Reason.OVERSIZED, f"> limit {MAX_BYTES}"),
        (b"{}", Reason.INVALID_EVENT, "timestamp: Field required"),
        (msg(event(path="nope")), Reason.INVALID_EVENT, "path must start with '/'"),
        (msg(event(client_ip="999.0.0.1")), Reason.INVALID_EVENT, "is not an IPv4 or IPv6"),
        (msg(event(timestamp=(NOW_S + 3600) * 1000)), Reason.INVALID_EVENT, "in the future"),
    ],
)
@pytest.mark.parametrize("position", ["alone", "among good ones"])
def test_each_reject_has_its_reason(
    value: bytes | None, reason: Reason, detail: str, position: str
) -> None:
    values = [value] if position == "alone" else [msg(event(1)), value, msg(event(2))]
    out = decoder().decode(values, CTX)
    at = 0 if position == "alone" else 1
    assert reasons(out) == [(at, reason)]
    assert detail in out.rejected[0].detail
    assert len(out.events) == len(values) - 1
    assert at not in out.source_index


def test_oversized_limit_is_inclusive() -> None:
    base = msg(event())
    pad = MAX_BYTES - len(base)
    exact = base[:-1] + b"," + b'"pad":"' + b"a" * (pad - 9) + b'"}'
    assert len(exact) == MAX_BYTES
    assert len(decoder().decode([exact], CTX).events) == 1
    over = exact[:-2] + b'a"}'
    assert reasons(decoder().decode([over], CTX)) == [(0, Reason.OVERSIZED)]


def test_validation_detail_lists_a_few_errors_only() -> None:
    out = decoder().decode([b'{"service": "s"}'], CTX)
    detail = out.rejected[0].detail
    assert detail.startswith("timestamp: Field required; method: Field required;")
    assert detail.endswith("(+3 more)")


def test_empty_batch() -> None:
    out = decoder().decode([], CTX)
    assert out.events == [] and out.source_index == [] and out.rejected == []


# -- arrays of events in one message ----------------------------------------------------


def test_an_array_message_gives_each_event_its_message_index() -> None:
    values: list[bytes | None] = [
        msg(event(0)),
        msg([event(1), event(2), event(3)]),
        msg(event(4)),
    ]
    out = decoder().decode(values, CTX)
    assert out.source_index == [0, 1, 1, 1, 2]
    assert [e.path for e in out.events] == [f"/items/{i}" for i in range(5)]
    assert not out.rejected


def test_an_array_with_one_bad_element_is_rejected_whole() -> None:
    values: list[bytes | None] = [msg([event(1), event(2, status="500"), event(3)]), msg(event(4))]
    out = decoder().decode(values, CTX)
    assert out.source_index == [1]
    assert [e.path for e in out.events] == ["/items/4"]
    assert reasons(out) == [(0, Reason.INVALID_EVENT)]
    assert "status" in out.rejected[0].detail


def test_a_message_holding_two_objects_is_not_two_messages() -> None:
    # Joined into "[...]" this would parse as three values: the fast path must notice.
    values: list[bytes | None] = [msg(event(1)) + b"," + msg(event(2)), msg(event(3))]
    out = decoder().decode(values, CTX)
    assert out.source_index == [1]
    assert reasons(out) == [(0, Reason.INVALID_JSON)]


def test_messages_cannot_merge_across_boundaries() -> None:
    one, two, three = msg(event(1)), msg(event(2)), msg(event(3))
    # Splits one message into two values and merges the next two into one value.
    first = one + b"," + two
    second = three[:-1] + b',"user_agent":"}'  # a string that swallows the boundary ...
    third = b'{"}'  # ... and closes in the next message
    out = decoder().decode([first, second, third], CTX)
    assert reasons(out) == [
        (0, Reason.INVALID_JSON),
        (1, Reason.INVALID_JSON),
        (2, Reason.INVALID_JSON),
    ]


def test_synthetic_results_decode_too() -> None:
    result = {
        "check_id": "c",
        "check_name": "c",
        "run_id": "r",
        "location": "eu",
        "timestamp": NOW_S * 1000 - 5_000,
        "status": "failed",
        "duration_ms": 5,
        "steps": [
            {
                "name": "s",
                "method": "GET",
                "url": "https://x/a/1",
                "status_code": None,
                "duration_ms": 5,
            }
        ],
    }
    dec = BatchDecoder(SyntheticResult, max_bytes=MAX_BYTES)
    out = dec.decode([msg(result), msg({**result, "steps": []})], CTX)
    assert out.source_index == [0] and out.events[0].steps[0].route == "/a/{id}"
    assert reasons(out) == [(1, Reason.INVALID_EVENT)]


# -- properties -------------------------------------------------------------------------

_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"123456789012345678901234567890", b"-0.0"]


@st.composite
def good_message(draw: st.DrawFn) -> bytes:
    i = draw(st.integers(0, 10_000))
    over: dict[str, Any] = {}
    if draw(st.booleans()):
        over["method"] = draw(st.sampled_from(["get", "Post", "DELETE"]))
    if draw(st.booleans()):
        over["timestamp"] = draw(
            st.sampled_from(
                ["2025-12-31T23:59:00Z", "2026-01-01T01:59:00+02:00", str(NOW_S * 1000 - 7)]
            )
        )
    if draw(st.booleans()):
        over["client_ip"] = draw(st.sampled_from(["2001:DB8::1", "::1", "192.168.0.1"]))
    if draw(st.booleans()):
        over["request_bytes"] = draw(st.integers(0, 2**62))
    body = msg(event(i, **over))
    if draw(st.booleans()):
        # Extra fields are ignored by the contract, whatever JSON number they hold.
        body = body[:-1] + b',"extra":' + draw(st.sampled_from(_NUMBERS)) + b"}"
    return body


_bad_message = st.one_of(
    st.just(None),
    st.sampled_from([b"{oops", b"", b"[]", b"7", b"null", b"[1]", b'{"service":"s"}']),
    st.builds(lambda e: msg(event(1, status=e)), st.sampled_from([99, 600, "200", 200.5])),
    st.builds(lambda d: msg(event(2, duration_ms=d)), st.sampled_from([-1, "x"])),
    st.just(b"{" + b" " * MAX_BYTES + b"}"),
    st.binary(max_size=40),
)


@st.composite
def array_message(draw: st.DrawFn) -> bytes:
    items = [draw(good_message()) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), b'{"service": "broken"}')
    return b"[" + b", ".join(items) + b"]"


_message = st.one_of(good_message(), good_message(), _bad_message, array_message())


@FAST
@given(st.lists(_message, max_size=25))
def test_every_message_is_accounted_for_exactly_once(values: list[bytes | None]) -> None:
    out = decoder().decode(values, CTX)
    rejected = [r.index for r in out.rejected]
    kept = set(out.source_index)
    assert len(rejected) == len(set(rejected))
    assert kept.isdisjoint(rejected)
    assert kept | set(rejected) == set(range(len(values)))
    assert out.source_index == sorted(out.source_index)
    assert len(out.events) == len(out.source_index)
    # An accepted array message contributes all its elements.
    counts = Counter(out.source_index)
    for i, n in counts.items():
        value = values[i]
        assert value is not None
        parsed = from_json(value)
        assert n == (len(parsed) if isinstance(parsed, list) else 1)


@FAST
@given(st.lists(_message, max_size=25))
def test_a_batch_decodes_as_its_messages_decode_one_by_one(values: list[bytes | None]) -> None:
    # Whether a message is valid cannot depend on its neighbours in the batch
    # (a replay after a crash cuts batches differently).
    out = decoder().decode(values, CTX)
    ref = one_by_one(values)
    assert out.source_index == ref.source_index
    assert out.events == ref.events
    assert reasons(out) == reasons(ref)


@FAST
@given(st.lists(good_message(), min_size=1, max_size=25), st.data())
def test_good_messages_pass_whatever_bad_message_joins_them(
    good: list[bytes], data: st.DataObject
) -> None:
    fast = decoder().decode(list(good), CTX)
    assert fast.source_index == list(range(len(good)))
    bad = data.draw(_bad_message)
    at = data.draw(st.integers(0, len(good)))
    mixed: list[bytes | None] = [*good[:at], bad, *good[at:]]
    slow = decoder().decode(mixed, CTX)
    assert [r.index for r in slow.rejected] == [at]
    assert slow.events == fast.events
