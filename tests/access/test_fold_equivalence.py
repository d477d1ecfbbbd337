"""The fast fold gives the records, and so the alerts, of the plain per-event fold.

``reference_fold.ReferenceFolder`` is the fold as first written (one pass per
event and client, eager sets). The fast :class:`AccessFolder` must agree with it
record for record: on random events (hypothesis, with small caps so every cap
is reached) and on a simulated scenario with attacks, down to the emitted alerts.
Sets travel as lists whose order means nothing, so they are compared sorted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.fold import AccessFolder
from apiwatch.models.access.replay import AccessReplay
from apiwatch.models.events import RumEvent
from apiwatch.models.monitor import Emission
from apiwatch.models.simulation import Scenario, Simulator

from .helpers import T0
from .reference_fold import ReferenceFolder

ROUTES = [
    ("shop", "GET", "/products/17", "/products/{id}"),
    ("shop", "GET", "/products/18", "/products/{id}"),
    ("shop", "GET", "/users/4/orders/9", "/users/{id}/orders/{id}"),
    ("shop", "GET", "/products", None),
    ("shop", "DELETE", "/cart/3", "/cart/{id}"),
    ("auth", "POST", "/login", None),
    ("auth", "PUT", "/api/v1/token", None),
    ("auth", "GET", "/login", None),
    ("shop", "GET", "/.env", None),
    ("shop", "GET", "/wp-admin/setup.php", None),
    ("shop", "GET", "/" + "x" * 230, None),  # cut to MAX_VALUE_CHARS in sets
    ("shop", "GET", "/nothing-here", None),
]
AGENTS = [None, "", "Mozilla/5.0", "sqlmap/1.8", "apiwatch-synthetics/0.1", "curl/8", "nikto"]

event_fields = st.fixed_dictionaries(
    {
        "at_ms": st.integers(0, 60_000),
        "route": st.sampled_from(ROUTES),
        "status": st.sampled_from([200, 201, 302, 400, 401, 403, 404, 429, 500, 503]),
        "ip": st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.9", "2001:db8::5"]),
        "user": st.sampled_from([None, "alice", "bob", "carol", "dave", "erin", "frank"]),
        "cred": st.sampled_from([None, "key-1", "key-2"]),
        "agent": st.sampled_from(AGENTS),
        "country": st.sampled_from([None, "US", "DE", "BR"]),
        "bytes": st.sampled_from([None, 0, 512]),
        "event_id": st.sampled_from([None, "a", "b", "c", "d"]),
        "env": st.sampled_from(["production", "staging"]),
    }
)


def _event(f: dict[str, Any]) -> RumEvent:
    service, method, path, route = f["route"]
    return RumEvent(
        timestamp=datetime.fromtimestamp((T0 + f["at_ms"]) / 1000, UTC),
        environment=f["env"],
        service=service,
        method=method,
        path=path,
        route=route,
        status=f["status"],
        duration_ms=5.0,
        client_ip=f["ip"],
        user_id=f["user"],
        credential_id=f["cred"],
        user_agent=f["agent"],
        country=f["country"],
        response_bytes=f["bytes"],
        event_id=f["event_id"],
    )


def canonical(value: Any) -> Any:
    """Lists sorted (their order is a set's), recursively; dicts by key."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        items = [canonical(v) for v in value]
        return sorted(items, key=repr)
    return value


SMALL_CAPS = AccessConfig(
    fold={"max_values": 4, "sample_ids": 2, "max_routes": 2},
    allow={"user_agents": ["apiwatch-synthetics/"], "ips": ["192.0.2.0/24"]},
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(event_fields, max_size=120),
    st.lists(st.integers(1, 40), min_size=1, max_size=8),
    st.sampled_from([SMALL_CAPS, AccessConfig()]),
)
def test_fast_fold_gives_the_reference_records(
    fields: list[dict[str, Any]], cuts: list[int], cfg: AccessConfig
) -> None:
    events = [_event(f) for f in sorted(fields, key=lambda f: f["at_ms"] // 7_000)]
    fast, ref = AccessFolder(cfg, origin="rum:3"), ReferenceFolder(cfg, origin="rum:3")
    i = 0
    for n in cuts * 20:
        batch, offsets = events[i : i + n], list(range(100 + i, 100 + i + len(events[i : i + n])))
        fast.fold(batch, offsets)
        ref.fold(batch, offsets)
        i += n
        assert fast.committable() == ref.committable()
        assert canonical(fast.close_ready()) == canonical(ref.close_ready())
        if i >= len(events):
            break
    assert canonical(fast.close_ready(everything=True)) == canonical(
        ref.close_ready(everything=True)
    )
    assert (fast.watermark_ms, fast.allowed_total, fast.late_total) == (
        ref.watermark_ms,
        ref.allowed_total,
        ref.late_total,
    )


SCENARIO = Scenario.model_validate(
    {
        "seed": 5,
        "duration_s": 1500,
        "clients": 300,
        "services": [
            {"name": "shop", "rate_rps": 12, "routes": [
                {"method": "GET", "route": "/products/{id}", "weight": 4},
                {"method": "GET", "route": "/orders/{id}", "weight": 1}]},
            {"name": "auth", "rate_rps": 4, "routes": [
                {"method": "POST", "route": "/login", "weight": 1, "client_error_rate": 0.05}]},
        ],
        "heavy_clients": [{"kind": "carrier_nat", "service": "shop", "rate_rps": 3}],
        "incidents": [
            {"kind": "brute_force", "target": {"service": "auth", "method": "POST",
             "route": "/login"}, "start_s": 120, "duration_s": 300, "magnitude": 0.5},
            {"kind": "enumeration", "target": {"service": "shop", "method": "GET",
             "route": "/orders/{id}"}, "start_s": 200, "duration_s": 240, "magnitude": 2},
            {"kind": "probing", "target": {"service": "shop"}, "start_s": 400, "duration_s": 200,
             "magnitude": 1},
            {"kind": "credential_stuffing", "target": {"service": "auth", "method": "POST",
             "route": "/login"}, "start_s": 700, "duration_s": 300, "magnitude": 1.0},
        ],
    }
)  # fmt: skip


def _replay(reference: bool) -> list[Emission]:
    cfg = AccessConfig(model={"enabled": False})
    r = AccessReplay(cfg)
    if reference:
        r.folder = ReferenceFolder(cfg)  # type: ignore[assignment]
    sim = Simulator(SCENARIO, T0)
    events = TypeAdapter(list[RumEvent])
    ctx = {"now": T0 / 1000 + 86_400, "max_future_skew_s": 300.0}
    out: list[Emission] = []
    for rel in range(0, int(SCENARIO.duration_s * 1000), 7_000):
        out += r.feed(events.validate_python(sim.generate(rel, rel + 7_000)[0], context=ctx))
    return out + r.finish()


def _alert(e: Emission) -> Any:
    """The emitted event, with the evidence's sample lists reduced to their length.

    Which ids or users a sample shows came from a set's iteration order in the
    reference fold (so from the hash seed); the fast fold shows the first seen.
    """
    event = e.event("t").model_dump(mode="json")
    details = event["data"]["evidence"]["details"]
    for k, v in details.items():
        if isinstance(v, list):
            details[k] = len(v)
    return canonical(event)


def test_fast_fold_raises_the_reference_alerts_on_a_simulated_attack_mix() -> None:
    fast, ref = _replay(reference=False), _replay(reference=True)
    kinds = {e.alert.kind.value for e in fast if e.transition == "firing"}
    assert {"brute_force", "enumeration", "probing", "credential_stuffing"} <= kinds
    assert [_alert(e) for e in fast] == [_alert(e) for e in ref]
