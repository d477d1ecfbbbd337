"""Event factories for the access tests: RUM events in event time, and replays of them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.replay import AccessReplay
from apiwatch.models.events import RumEvent
from apiwatch.models.monitor import Emission

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

_seq = 0


def rum(at_s: float, **fields: Any) -> RumEvent:
    """A RUM event ``at_s`` seconds after T0; defaults are one ordinary GET."""
    global _seq
    _seq += 1
    base: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp((T0 + at_s * 1000) / 1000, UTC),
        "service": "shop",
        "method": "GET",
        "path": "/products",
        "status": 200,
        "duration_ms": 10.0,
        "client_ip": "198.51.100.1",
        "event_id": f"t-{_seq}",
    }
    base.update(fields)
    return RumEvent(**base)


def login(at_s: float, ip: str, user: str, ok: bool = False, **fields: Any) -> RumEvent:
    return rum(
        at_s,
        service="auth",
        method="POST",
        path="/login",
        status=200 if ok else 401,
        client_ip=ip,
        user_id=user,
        **fields,
    )


def replay(
    events: Iterable[RumEvent], cfg: AccessConfig | None = None, batch: int = 500
) -> list[Emission]:
    """Run events (sorted by time) through the same pipeline the stream runs."""
    r = AccessReplay(cfg or AccessConfig(model={"enabled": False}))
    ordered = sorted(events, key=lambda e: e.epoch_ms)
    out: list[Emission] = []
    for i in range(0, len(ordered), batch):
        out += r.feed(ordered[i : i + batch])
    return out + r.finish()


def fired(emissions: list[Emission]) -> list[tuple[str, str]]:
    """(kind, client or route) of every firing emission."""
    return [
        (e.alert.kind.value, e.alert.labels.get("client") or e.alert.labels.get("route", ""))
        for e in emissions
        if e.transition == "firing"
    ]


def background(seconds: int, clients: int = 40, per_client_s: float = 10.0) -> list[RumEvent]:
    """Ordinary traffic: many clients browsing products, logging in, mostly succeeding."""
    out = []
    for c in range(clients):
        ip = f"203.0.{113 + c // 250}.{c % 250 + 1}"
        t = c * 0.37
        while t < seconds:
            out.append(rum(t, client_ip=ip, user_id=f"user{c}", path=f"/products/{int(t) % 7}"))
            if int(t) % 120 < per_client_s:
                out.append(login(t + 0.1, ip, f"user{c}", ok=(c + int(t)) % 9 != 0))
            t += per_client_s
    return out
