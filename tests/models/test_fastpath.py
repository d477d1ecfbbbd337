"""The RUM fast path decides exactly what the pydantic RumEvent decides, value for value."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.buckets import rum_series_key
from apiwatch.models.decode import BatchDecoder
from apiwatch.models.events import RumEvent
from apiwatch.models.fastpath import RumFastPath

NOW_S = 1_767_225_600.0
CTX = {"now": NOW_S, "max_future_skew_s": 300.0}
GOOD: dict[str, Any] = {
    "timestamp": int(NOW_S * 1000) - 60_000,
    "service": "shop",
    "method": "GET",
    "path": "/users/42",
    "status": 200,
    "duration_ms": 12.5,
    "client_ip": "10.0.0.1",
}

# Per field, values that RumEvent accepts, rejects, or reads differently from the fast path.
VARIANTS: dict[str, list[Any]] = {
    "timestamp": [
        int(NOW_S * 1000),
        int(NOW_S),
        int(NOW_S * 1000) + 299_000,
        int(NOW_S * 1000) + 301_000,
        946_684_800_000,
        946_684_799_999,
        0,
        -5,
        2e10,
        20_000_000_001,
        1.5e12,
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "1767225600000",
        True,
        None,
        10**30,
    ],
    "service": ["a", "", "x" * 256, "x" * 257, 5, None, "ümlaut"],
    "environment": ["staging", "", "e" * 257, None, 3],
    "method": ["get", "Post", "PATCH", "BREW", "", 1, "ge t"],
    "path": ["/", "/a?b=1", "/a#frag", "a/b", "", "?x", "/" + "p" * 2047, "/" + "p" * 2048, 7],
    "route": ["/r/{id}", "", "r" * 513, None, 3],
    "status": [100, 599, 99, 600, "200", 200.0, True, None],
    "duration_ms": [0, 0.0, -0.0, -1, 1e308, "5", True, None, 10**400],
    "client_ip": [
        "1.2.3.4",
        "255.255.255.255",
        "256.1.1.1",
        "01.2.3.4",
        "::1",
        "2001:DB8::1",
        "not-an-ip",
        "",
        "1.2.3",
        12,
    ],
    "user_id": ["u1", "", "u" * 257, 5, None],
    "credential_id": ["k1", "", None, 1],
    "user_agent": ["curl/8", "a" * 1024, "a" * 1025, None, 2],
    "country": ["DE", "de", "dE", "DEU", "D", "Ä1", "ÄÖ", None, 1],
    "request_bytes": [0, 10, -1, 5.0, "5", 10**30, None],
    "response_bytes": [0, -2, 3.5, None],
    "trace_id": ["t", "", None],
    "event_id": ["e1", "", "e" * 257, None],
}


def outcome_slow(raw: bytes) -> tuple[str, Any]:
    d = BatchDecoder(RumEvent, 65_536).decode([raw], dict(CTX))
    if d.rejected:
        return "rejected", d.rejected[0].reason.value
    e = d.events[0]
    key = rum_series_key(e.environment, e.service, e.method, e.route or e.path)
    return "ok", (key, e.epoch_ms, e.status, e.duration_ms, e.event_id)


def outcome_fast(raw: bytes) -> tuple[str, Any]:
    c = RumFastPath(65_536).decode([raw], dict(CTX))
    if c.rejected:
        return "rejected", c.rejected[0].reason.value
    return "ok", (c.keys[0], c.ts_ms[0], c.status[0], c.duration_ms[0], c.event_ids[0])


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "rejected":
        return bool(a[1] == b[1])
    (ka, ta, sa, da, ea), (kb, tb, sb, db, eb) = a[1], b[1]
    dur_same = da == db or (math.isnan(da) and math.isnan(db))
    return bool(ka == kb and ta == tb and sa == sb and dur_same and ea == eb)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    obj = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(sorted(VARIANTS)), max_size=4, unique=True)):
        obj[name] = draw(st.sampled_from(VARIANTS[name]))
    for name in draw(st.lists(st.sampled_from(sorted(GOOD)), max_size=1)):
        obj.pop(name, None)
    if draw(st.booleans()):
        obj["extra_field"] = draw(st.sampled_from([1, "x", None, {"n": [1]}]))
    return dumps(obj)


def dumps(obj: dict[str, Any]) -> bytes:
    """JSON text, including integers beyond 64 bits (which orjson will not write)."""
    big = {k: v for k, v in obj.items() if isinstance(v, int) and abs(v) >= 2**63}
    raw = orjson.dumps({k: (0 if k in big else v) for k, v in obj.items()})
    for k, v in big.items():
        raw = raw.replace(f'"{k}":0'.encode(), f'"{k}":{v}'.encode(), 1)
    return raw


@settings(max_examples=600, deadline=None)
@given(messages())
def test_fast_path_decides_like_rum_event(raw: bytes) -> None:
    assert same(outcome_fast(raw), outcome_slow(raw)), raw


def test_every_variant_alone() -> None:
    for name, values in VARIANTS.items():
        for value in values:
            raw = (
                orjson.dumps({**GOOD, name: value}, option=orjson.OPT_PASSTHROUGH_DATACLASS)
                if not (isinstance(value, int) and abs(value) > 2**63)
                else orjson.dumps({**GOOD, name: 0}).replace(
                    b'"' + name.encode() + b'":0', f'"{name}":{value}'.encode()
                )
            )
            assert same(outcome_fast(raw), outcome_slow(raw)), (name, value)


def test_batches_keep_every_message_accounted_for() -> None:
    good = orjson.dumps(GOOD)
    deep = b'{"a":' * 5_000 + b"1" + b"}" * 5_000  # msgspec raises RecursionError here
    bad = [b"{nope", orjson.dumps({**GOOD, "status": 999}), b"[1]", None, b"x" * 70_000, deep]
    batch = [good, *bad, good, orjson.dumps([GOOD, GOOD])]
    cols = RumFastPath(65_536).decode(batch, dict(CTX))
    rejected = {r.index for r in cols.rejected}
    assert sorted(cols.source_index) == cols.source_index
    assert rejected.isdisjoint(cols.source_index)
    assert rejected | set(cols.source_index) == set(range(len(batch)))
    assert cols.source_index.count(len(batch) - 1) == 2  # an array message gives two events
