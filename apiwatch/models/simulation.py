"""Simulated API traffic with injected incidents and their ground truth. Pure and seeded.

A :class:`Scenario` (usually a YAML file) describes services with routes
(request share, log-normal latency, background error rate), synthetic checks
run from several locations, a client population, and incidents: kind, target,
start, duration, magnitude. :class:`Simulator` turns any event-time slice into
RUM events and synthetic results (plain dicts in the wire contract), the
same for the same seed and slice boundaries, whatever the wall clock: the
demo paces it in real time, the benchmarks and tests run it flat out.

Traffic has a daily rhythm (busiest mid-afternoon UTC, quietest at night),
Poisson arrivals, log-normal latencies and a small background error rate.

>>> sc = Scenario.model_validate({"duration_s": 600, "services": [{"name": "shop",
...     "rate_rps": 20, "routes": [{"method": "GET", "route": "/items/{id}"}]}],
...     "incidents": [{"kind": "latency_spike", "target": {"service": "shop",
...     "route": "/items/{id}"}, "start_s": 300, "duration_s": 120, "magnitude": 5}]})
>>> sim = Simulator(sc, start_ms=1_767_225_600_000)
>>> rum, syn = sim.generate(0, 60_000)
>>> 700 < len(rum) < 1100, rum[0]["service"], syn
(True, 'shop', [])
>>> [(t.kind, t.start_ms - 1_767_225_600_000) for t in sim.truth()]
[('latency_spike', 300000)]
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from apiwatch.models.access.traffic import (
    AttackKind,
    AttackSpec,
    HeavyKind,
    HeavySpec,
    attack_events,
    attacker_identity,
    heavy_events,
)
from apiwatch.models.routes import template_route

IncidentKind = (
    Literal["latency_spike", "error_surge", "traffic_drop", "synthetic_outage"] | AttackKind
)
#: Incident kinds that are abusive clients (traffic added, see models/access/traffic.py).
ATTACK_KINDS = frozenset(get_args(AttackKind))
#: Attacks whose traffic goes to the target route, which must then be given.
_ROUTED_ATTACKS = ATTACK_KINDS - {"probing"}

#: Which alert kinds count as detecting which injected incident kind.
DETECTED_BY: dict[str, tuple[str, ...]] = {
    "latency_spike": ("latency_spike", "slo_burn"),
    "error_surge": ("error_surge", "slo_burn"),
    "traffic_drop": ("traffic_anomaly",),
    "synthetic_outage": ("synthetic_failure",),
    "brute_force": ("brute_force",),
    "credential_stuffing": ("credential_stuffing",),
    "distributed_stuffing": ("credential_stuffing",),
    "enumeration": ("enumeration",),
    "scraping": ("scraping",),
    "probing": ("probing",),
    "token_sharing": ("token_sharing",),
    "impossible_travel": ("impossible_travel",),
}


#: Longest event-time slice generated with one incident and rate lookup.
SLICE_MS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSpec(_Strict):
    method: str = "GET"
    route: str = Field(pattern=r"^/")
    weight: float = Field(1.0, gt=0)
    latency_ms: float = Field(80.0, gt=0, description="Median latency.")
    latency_sigma: float = Field(0.5, ge=0, le=3, description="Log-normal shape.")
    error_rate: float = Field(0.002, ge=0, le=1, description="Background 5xx share.")
    client_error_rate: float = Field(0.01, ge=0, le=1, description="Background 4xx share.")


class ServiceSpec(_Strict):
    name: str
    environment: str = "production"
    rate_rps: float = Field(10.0, gt=0, description="Requests/s at the daily peak, all routes.")
    routes: list[RouteSpec] = Field(min_length=1)


class CheckStepSpec(_Strict):
    name: str
    method: str = "GET"
    route: str = Field(pattern=r"^/")
    latency_ms: float = Field(120.0, gt=0)


class CheckSpec(_Strict):
    check_id: str
    name: str
    service: str | None = None
    environment: str = "production"
    interval_s: float = Field(60.0, gt=0)
    locations: list[str] = Field(default_factory=lambda: ["eu-west", "us-east", "ap-south"])
    steps: list[CheckStepSpec] = Field(min_length=1)


class Target(_Strict):
    service: str | None = None
    method: str | None = None
    route: str | None = None
    check: str | None = None


class IncidentSpec(_Strict):
    kind: IncidentKind
    target: Target
    start_s: float = Field(ge=0, description="Seconds after the scenario start.")
    duration_s: float = Field(gt=0)
    magnitude: float = Field(
        gt=0,
        description="latency_spike: latency multiplier; error_surge: added 5xx share (0-1); "
        "traffic_drop: remaining share of traffic (0-1); synthetic_outage: share of locations failing; "
        "attacks: the attacker's requests per second.",
    )

    @model_validator(mode="after")
    def _target_fits(self) -> IncidentSpec:
        if self.kind == "synthetic_outage" and not self.target.check:
            raise ValueError("a synthetic_outage needs target.check")
        if self.kind != "synthetic_outage" and not self.target.service:
            raise ValueError(f"a {self.kind} needs target.service")
        if self.kind in ("error_surge", "traffic_drop") and self.magnitude > 1:
            raise ValueError(f"a {self.kind} magnitude is a share between 0 and 1")
        if self.kind in _ROUTED_ATTACKS and not (self.target.route and self.target.method):
            raise ValueError(f"a {self.kind} attack needs target.method and target.route")
        return self


class HeavyClientSpec(_Strict):
    """A heavy but legitimate client, part of normal traffic (alerts on it are false)."""

    kind: HeavyKind
    service: str
    rate_rps: float = Field(gt=0)


class Scenario(_Strict):
    seed: int = 7
    duration_s: float = Field(3600.0, gt=0)
    clients: int = Field(2000, ge=1)
    services: list[ServiceSpec] = Field(min_length=1)
    checks: list[CheckSpec] = Field(default_factory=list)
    incidents: list[IncidentSpec] = Field(default_factory=list)
    daily_amplitude: float = Field(0.4, ge=0, lt=1)
    malformed: int = Field(0, ge=0, description="Malformed messages sent across the run.")
    heavy_clients: list[HeavyClientSpec] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Truth:
    """An injected incident in absolute event time, for scoring detections."""

    kind: str
    labels: dict[str, str]
    start_ms: int
    end_ms: int
    magnitude: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "start": datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(self.end_ms / 1000, UTC).isoformat(),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "magnitude": self.magnitude,
        }


_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "shop-android/5.12.0 okhttp/4.12.0",
    "python-httpx/0.28.1",
)
_COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "NL")


def _fill(route: str, rng: np.random.Generator) -> str:
    parts = []
    for seg in route.split("/"):
        if seg.startswith("{") and seg.endswith("}"):
            name = seg[1:-1]
            if name == "uuid":
                seg = str(
                    uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
                )
            else:
                seg = str(int(rng.integers(1, 1_000_000)))
        parts.append(seg)
    return "/".join(parts)


class Simulator:
    """Generates RUM events and synthetic results for a scenario, slice by slice."""

    def __init__(self, scenario: Scenario, start_ms: int) -> None:
        self.sc = scenario
        self.start_ms = start_ms
        self.end_ms = start_ms + int(scenario.duration_s * 1000)
        pop = np.random.default_rng(scenario.seed)
        n = scenario.clients
        self.client_ips = [
            f"{int(a)}.{int(b)}.{int(c)}.{int(d)}"
            for a, b, c, d in zip(
                pop.integers(11, 223, n),
                pop.integers(0, 256, n),
                pop.integers(0, 256, n),
                pop.integers(1, 255, n),
                strict=True,
            )
        ]
        self.client_agent = pop.integers(0, len(_AGENTS), n)
        self.client_country = pop.integers(0, len(_COUNTRIES), n)
        # Zipf-like activity: a few clients are far busier than most, as in real traffic.
        weights = 1.0 / np.arange(1, n + 1) ** 0.8
        self.client_p = weights / weights.sum()
        self._seq = 0

    # -- ground truth --------------------------------------------------------

    def truth(self) -> list[Truth]:
        out = []
        for i, inc in enumerate(self.sc.incidents):
            labels = {k: v for k, v in inc.target.model_dump().items() if v is not None}
            if inc.kind in ATTACK_KINDS and inc.kind != "distributed_stuffing":
                labels = attacker_identity(inc.kind, i)  # the client is what an alert names
            if inc.target.service:
                svc = self._service(inc.target.service)
                labels.setdefault("environment", svc.environment)
            out.append(
                Truth(
                    kind=inc.kind,
                    labels=labels,
                    start_ms=self.start_ms + int(inc.start_s * 1000),
                    end_ms=self.start_ms + int((inc.start_s + inc.duration_s) * 1000),
                    magnitude=inc.magnitude,
                )
            )
        return out

    def _service(self, name: str) -> ServiceSpec:
        for svc in self.sc.services:
            if svc.name == name:
                return svc
        raise ValueError(f"incident targets unknown service {name!r}")

    def _active(self, t_ms: int, kind: str) -> Iterator[IncidentSpec]:
        rel = (t_ms - self.start_ms) / 1000
        for inc in self.sc.incidents:
            if inc.kind == kind and inc.start_s <= rel < inc.start_s + inc.duration_s:
                yield inc

    @staticmethod
    def _hits(inc: IncidentSpec, service: str, method: str, route: str) -> bool:
        t = inc.target
        return (
            t.service == service
            and (t.route is None or t.route == route)
            and (t.method is None or t.method == method)
        )

    def daily_factor(self, t_ms: int) -> float:
        hour = (t_ms / 3_600_000) % 24
        return 1.0 + self.sc.daily_amplitude * math.sin(2 * math.pi * (hour - 9) / 24)

    # -- generation ----------------------------------------------------------

    def generate(
        self, t_from_rel_ms: int, t_to_rel_ms: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """RUM events and synthetic results with event time in the relative slice."""
        lo = self.start_ms + t_from_rel_ms
        hi = min(self.start_ms + t_to_rel_ms, self.end_ms)
        if hi <= lo:
            return [], []
        rng = np.random.default_rng([self.sc.seed, lo])
        rum: list[dict[str, Any]] = []
        # Incidents and the daily rhythm are looked up per slice: keep slices short.
        for a in range(lo, hi, SLICE_MS):
            rum.extend(self._rum(a, min(a + SLICE_MS, hi), rng))
        syn = self._synthetic(lo, hi, rng)
        return rum, syn

    def _rum(self, lo: int, hi: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        mid = (lo + hi) // 2
        factor = self.daily_factor(mid)
        dt_s = (hi - lo) / 1000
        for svc in self.sc.services:
            total_w = sum(r.weight for r in svc.routes)
            for r in svc.routes:
                rate = svc.rate_rps * factor * r.weight / total_w
                lat_mult, err_add, keep = 1.0, 0.0, 1.0
                for inc in self._active(mid, "latency_spike"):
                    if self._hits(inc, svc.name, r.method, r.route):
                        lat_mult *= inc.magnitude
                for inc in self._active(mid, "error_surge"):
                    if self._hits(inc, svc.name, r.method, r.route):
                        err_add += inc.magnitude
                for inc in self._active(mid, "traffic_drop"):
                    if self._hits(inc, svc.name, r.method, r.route):
                        keep *= inc.magnitude
                n = int(rng.poisson(rate * dt_s * keep))
                if n == 0:
                    continue
                ts = np.sort(rng.integers(lo, hi, n))
                lat = rng.lognormal(math.log(r.latency_ms * lat_mult), r.latency_sigma, n)
                u = rng.random(n)
                p5 = min(1.0, r.error_rate + err_add)
                status = np.where(
                    u < p5,
                    rng.choice([500, 502, 503, 504], n),
                    np.where(u < p5 + r.client_error_rate, rng.choice([400, 404, 409], n), 200),
                )
                clients = rng.choice(len(self.client_ips), n, p=self.client_p)
                for i in range(n):
                    c = int(clients[i])
                    self._seq += 1
                    out.append(
                        {
                            "timestamp": int(ts[i]),
                            "service": svc.name,
                            "environment": svc.environment,
                            "method": r.method,
                            "path": _fill(r.route, rng),
                            "route": r.route,
                            "status": int(status[i]),
                            "duration_ms": round(float(lat[i]), 3),
                            "client_ip": self.client_ips[c],
                            "user_id": f"u{c}",
                            "user_agent": _AGENTS[int(self.client_agent[c])],
                            "country": _COUNTRIES[int(self.client_country[c])],
                            "event_id": f"sim-{self.sc.seed}-{lo}-{self._seq}",
                        }
                    )
        out.extend(self._abusive_and_heavy(lo, hi, rng))
        out.sort(key=lambda e: e["timestamp"])
        return out

    def attack_specs(self) -> list[tuple[IncidentSpec, AttackSpec]]:
        out = []
        for i, inc in enumerate(self.sc.incidents):
            if inc.kind in ATTACK_KINDS:
                env = self._service(inc.target.service or "").environment
                t = inc.target
                spec = AttackSpec(inc.kind, t.service or "", t.method or "GET", t.route or "/",
                                  inc.magnitude, i, self.sc.seed, env)  # fmt: skip
                out.append((inc, spec))
        return out

    def heavy_specs(self) -> list[HeavySpec]:
        return [
            HeavySpec(
                h.kind, h.service, h.rate_rps, i, self.sc.seed, self._service(h.service).environment
            )
            for i, h in enumerate(self.sc.heavy_clients)
        ]

    def _abusive_and_heavy(
        self, lo: int, hi: int, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for inc, spec in self.attack_specs():
            a = max(lo, self.start_ms + int(inc.start_s * 1000))
            b = min(hi, self.start_ms + int((inc.start_s + inc.duration_s) * 1000))
            if a < b:
                out.extend(attack_events(spec, a, b, rng))
        for heavy in self.heavy_specs():
            out.extend(heavy_events(heavy, lo, hi, rng))
        return out

    def _synthetic(self, lo: int, hi: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chk in self.sc.checks:
            period = int(chk.interval_s * 1000)
            for li, loc in enumerate(chk.locations):
                # Locations run staggered across the interval, as real runners do.
                offset = (li * period) // max(1, len(chk.locations))
                first = ((lo - self.start_ms - offset + period - 1) // period) * period
                t = self.start_ms + offset + first
                while t < hi:
                    if t >= lo:
                        out.append(self._run(chk, loc, li, t, rng))
                    t += period
        out.sort(key=lambda e: e["timestamp"])
        return out

    def _run(
        self, chk: CheckSpec, loc: str, li: int, t: int, rng: np.random.Generator
    ) -> dict[str, Any]:
        failing = False
        for inc in self._active(t, "synthetic_outage"):
            if inc.target.check == chk.check_id:
                failing = li < max(1, round(inc.magnitude * len(chk.locations)))
        lat_mult = 1.0
        if chk.service:
            for inc in self._active(t, "latency_spike"):
                if any(self._hits(inc, chk.service, s.method, s.route) for s in chk.steps):
                    lat_mult *= inc.magnitude
        steps = []
        total = 0.0
        for si, s in enumerate(chk.steps):
            dur = float(rng.lognormal(math.log(s.latency_ms * lat_mult), 0.25))
            broken = failing and si == len(chk.steps) - 1
            code = 503 if broken else 200
            total += dur
            steps.append(
                {
                    "name": s.name,
                    "method": s.method,
                    "url": f"https://{chk.service or 'api'}.example.com{_fill(s.route, rng)}",
                    "route": template_route(s.route),
                    "status_code": code,
                    "duration_ms": round(dur, 3),
                    "timings": {
                        "dns": 2.0,
                        "connect": 8.0,
                        "tls": 15.0,
                        "ttfb": round(dur * 0.8, 3),
                    },
                    "assertions": [
                        {
                            "kind": "status_code",
                            "passed": not broken,
                            "expected": 200,
                            "actual": code,
                        }
                    ],
                    "error": None,
                }
            )
        self._seq += 1
        return {
            "check_id": chk.check_id,
            "check_name": chk.name,
            "run_id": f"run-{self.sc.seed}-{chk.check_id}-{loc}-{t}",
            "location": loc,
            "timestamp": t,
            "status": "failed" if failing else "passed",
            "duration_ms": round(total, 3),
            "steps": steps,
            "service": chk.service,
            "environment": chk.environment,
        }


def malformed_messages(now_ms: int) -> list[tuple[str, bytes]]:
    """One of each kind of bad input the ingest stage must dead-letter, with its expected reason."""
    good: dict[str, Any] = {
        "timestamp": now_ms,
        "service": "shop",
        "method": "GET",
        "path": "/x",
        "status": 200,
        "duration_ms": 5.0,
        "client_ip": "10.1.2.3",
    }
    import orjson

    def variant(**kw: Any) -> bytes:
        return orjson.dumps({**good, **kw})

    missing = {k: v for k, v in good.items() if k != "service"}
    return [
        ("invalid_json", b"this is not json {"),
        ("invalid_event", variant(duration_ms=-5)),
        ("invalid_event", variant(status=999)),
        ("invalid_event", variant(status="200")),
        ("invalid_event", orjson.dumps(missing)),
        ("invalid_event", variant(timestamp=now_ms + 365 * 86_400_000)),
        ("not_an_object", b"[1, 2, 3]"),
        ("oversized", variant(user_agent="x" * 200) + b" " * 70_000),
    ]
