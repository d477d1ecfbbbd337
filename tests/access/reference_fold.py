"""The per-event access fold as first written: the oracle the fast fold is checked against.

:class:`ReferenceFolder` is the straightforward version of
:class:`~apiwatch.models.access.fold.AccessFolder` (one Python pass per event and
client, eager sets): slow, but easy to read line by line against the detectors'
needs. ``tests/access/test_fold_equivalence.py`` asserts that both give the same
records, and so the same alerts, on random and simulated traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apiwatch.models.access.allowlist import AllowList
from apiwatch.models.access.classify import RequestClassifier, object_ids
from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.records import ClientKind, client_key, route_key
from apiwatch.models.events import RumEvent

#: Longest value kept in a set (paths, agents): longer ones are cut, never trusted whole.
MAX_VALUE_CHARS = 200
_MAX_AGENTS = 8
_MAX_SCANNERS = 3
_MAX_LOGIN_VALUES = 256
_MAX_LOGIN_IPS = 64
_COUNTS = ("errors_4xx", "errors_5xx", "not_found", "writes", "login_attempts",
           "login_failures", "response_bytes", "scanner_requests")  # fmt: skip
_SETS = ("users", "failed_users", "ips", "failed_ips", "agents", "paths_404", "sensitive",
         "scanner_agents")  # fmt: skip

#: A record as a plain JSON-able dict (see :class:`~apiwatch.models.access.records.ClientWindow`).
RecordDict = dict[str, Any]


def _add(values: set[str], value: str, cap: int) -> None:
    if len(values) < cap:
        values.add(value[:MAX_VALUE_CHARS])


@dataclass(slots=True)
class _RouteAcc:
    count: int = 0
    denied: int = 0
    ids: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _ClientAcc:
    first_ms: int
    last_ms: int
    count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    not_found: int = 0
    writes: int = 0
    login_attempts: int = 0
    login_failures: int = 0
    response_bytes: int = 0
    scanner_requests: int = 0
    routes: dict[str, _RouteAcc] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    failed_users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    failed_ips: set[str] = field(default_factory=set)
    countries: dict[str, list[int]] = field(default_factory=dict)
    agents: set[str] = field(default_factory=set)
    paths_404: set[str] = field(default_factory=set)
    sensitive: set[str] = field(default_factory=set)
    scanner_agents: set[str] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _LoginAcc:
    attempts: int = 0
    failures: int = 0
    failed_users: set[str] = field(default_factory=set)
    ok_users: set[str] = field(default_factory=set)
    failed_ips: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Window:
    start_ms: int
    min_offset: int
    clients: dict[str, _ClientAcc] = field(default_factory=dict)
    logins: dict[str, _LoginAcc] = field(default_factory=dict)


def _quantile(values: list[int], q: float) -> float:
    """Nearest-rank quantile.

    >>> _quantile([1, 2, 3, 4, 100], 0.5)
    3.0
    """
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class ReferenceFolder:
    """Open micro-windows of one source partition, folded event by event."""

    def __init__(
        self, cfg: AccessConfig, allow: AllowList | None = None, origin: str | None = None
    ) -> None:
        """``origin`` (``topic:partition``) names events that carry no event id, as ingest does."""
        self.cfg = cfg
        self.origin = origin
        self.fold_cfg = cfg.fold
        self.width_ms = int(cfg.fold.window_s * 1000)
        self.lateness_ms = int(cfg.fold.allowed_lateness_s * 1000)
        self.allow = allow or AllowList(cfg.allow)
        self.classify = RequestClassifier(cfg.classify)
        self.quantile = cfg.scraping.reference_quantile
        self.windows: dict[int, _Window] = {}
        self.watermark_ms: int | None = None
        self.allowed_total = 0
        self.late_total = 0
        self._flushed_through = -(2**62)

    # -- folding ------------------------------------------------------------

    def fold(self, events: Sequence[RumEvent], offsets: Sequence[int]) -> None:
        """Add a batch of valid events; ``offsets`` are their source offsets."""
        for event, offset in zip(events, offsets, strict=True):
            self._fold_one(event, int(offset))

    def _fold_one(self, e: RumEvent, offset: int) -> None:
        if self.allow.allows(e.client_ip, e.user_agent, e.user_id, e.credential_id):
            self.allowed_total += 1
            return
        ms = e.epoch_ms
        if self.watermark_ms is None or ms > self.watermark_ms:
            self.watermark_ms = ms
        start = ms - ms % self.width_ms
        if start + self.width_ms + self.lateness_ms <= self._flushed_through:
            self.late_total += 1
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = _Window(start, offset)
        elif offset < window.min_offset:
            window.min_offset = offset
        route = e.route or e.path
        rkey = route_key(e.service, e.method, route)
        status = e.status
        login = self.classify.is_login(e.method, route)
        failed = login and status in self.classify.auth_failures
        env = e.environment
        keys = [(ClientKind.IP, e.client_ip)]
        if e.user_id is not None:
            keys.append((ClientKind.USER, e.user_id))
        if e.credential_id is not None:
            keys.append((ClientKind.CREDENTIAL, e.credential_id))
        for kind, value in keys:
            key = client_key(env, kind, value)
            acc = window.clients.get(key)
            if acc is None:
                acc = window.clients[key] = _ClientAcc(first_ms=ms, last_ms=ms)
            self._fold_client(acc, kind, e, ms, rkey, route, login, failed, offset)
        if login:
            lkey = "|".join((env, e.service, e.method, route))
            lacc = window.logins.get(lkey)
            if lacc is None:
                lacc = window.logins[lkey] = _LoginAcc()
            lacc.attempts += 1
            if failed:
                lacc.failures += 1
                if e.user_id is not None:
                    _add(lacc.failed_users, e.user_id, _MAX_LOGIN_VALUES)
                ip = e.client_ip
                if ip in lacc.failed_ips or len(lacc.failed_ips) < _MAX_LOGIN_IPS:
                    lacc.failed_ips[ip] = lacc.failed_ips.get(ip, 0) + 1
                event_id = self._event_id(e, offset)
                if event_id is not None and len(lacc.samples) < self.fold_cfg.sample_ids:
                    lacc.samples.append(event_id)
            elif status < 400 and e.user_id is not None:
                _add(lacc.ok_users, e.user_id, _MAX_LOGIN_VALUES)

    def _fold_client(
        self,
        acc: _ClientAcc,
        kind: ClientKind,
        e: RumEvent,
        ms: int,
        rkey: str,
        route: str,
        login: bool,
        failed: bool,
        offset: int,
    ) -> None:
        cap = self.fold_cfg.max_values
        status = e.status
        acc.count += 1
        acc.first_ms = min(acc.first_ms, ms)
        acc.last_ms = max(acc.last_ms, ms)
        if 400 <= status < 500:
            acc.errors_4xx += 1
            if status == 404:
                acc.not_found += 1
                # A missing object on a real route is enumeration's business; a path
                # that matches no route shape at all is what a probe asks for.
                if "{" not in route:
                    _add(acc.paths_404, e.path, cap)
        elif status >= 500:
            acc.errors_5xx += 1
        if e.method not in ("GET", "HEAD", "OPTIONS"):
            acc.writes += 1
        if e.response_bytes:
            acc.response_bytes += e.response_bytes
        acc.services[e.service] = acc.services.get(e.service, 0) + 1
        r = acc.routes.get(rkey)
        if r is None:
            r = acc.routes[rkey] = _RouteAcc()
        r.count += 1
        if status in (403, 404):
            r.denied += 1
        _add(r.paths, e.path, cap)
        ids = object_ids(e.path, route)
        if ids is not None:
            _add(r.ids, ids, cap)
        if login:
            acc.login_attempts += 1
            if failed:
                acc.login_failures += 1
        if kind is ClientKind.IP:
            if e.user_id is not None:
                _add(acc.users, e.user_id, cap)
                if failed:
                    _add(acc.failed_users, e.user_id, cap)
        else:
            _add(acc.ips, e.client_ip, cap)
            if failed:
                _add(acc.failed_ips, e.client_ip, cap)
        if e.country is not None:
            seen = acc.countries.get(e.country)
            if seen is None:
                acc.countries[e.country] = [ms, ms, 1]
            else:
                seen[0] = min(seen[0], ms)
                seen[1] = max(seen[1], ms)
                seen[2] += 1
        agent = e.user_agent
        if agent:
            _add(acc.agents, agent, _MAX_AGENTS)
            if self.classify.is_scanner(agent):
                acc.scanner_requests += 1
                _add(acc.scanner_agents, agent, _MAX_SCANNERS)
        if self.classify.is_sensitive(e.path):
            _add(acc.sensitive, e.path, cap)
        if len(acc.samples) < self.fold_cfg.sample_ids:
            event_id = self._event_id(e, offset)
            if event_id is not None:
                acc.samples.append(event_id)

    def _event_id(self, e: RumEvent, offset: int) -> str | None:
        if e.event_id is not None:
            return e.event_id
        return f"{self.origin}:{offset}" if self.origin is not None else None

    # -- closing ------------------------------------------------------------

    def advance(self, watermark_ms: int) -> None:
        """Move event time on without events (an idle partition), so windows close."""
        if self.watermark_ms is None or watermark_ms > self.watermark_ms:
            self.watermark_ms = watermark_ms

    def close_ready(self, everything: bool = False) -> tuple[list[RecordDict], list[RecordDict]]:
        """Records of every window whose end plus lateness the watermark has passed.

        They are plain dicts in the shape of :class:`ClientWindow` and
        :class:`LoginWindow`: they go straight to JSON on the access topic, and
        are validated where they are read (the detect stage, the replay).
        """
        if self.watermark_ms is None:
            return [], []
        limit = self.watermark_ms - self.lateness_ms
        ready = [s for s in self.windows if everything or s + self.width_ms <= limit]
        clients: list[RecordDict] = []
        logins: list[RecordDict] = []
        for start in sorted(ready):
            window = self.windows.pop(start)
            clients.extend(self._client_records(window))
            logins.extend(self._login_records(window))
            self._flushed_through = max(self._flushed_through, start + self.width_ms)
        return clients, logins

    def committable(self) -> int | None:
        """Lowest source offset still held in an open window, None when nothing is held."""
        if not self.windows:
            return None
        return min(w.min_offset for w in self.windows.values())

    def _client_records(self, w: _Window) -> list[RecordDict]:
        # Population per (client kind, route): who else hit this route in this window.
        per_route: dict[tuple[str, str], list[int]] = {}
        per_kind_routes: dict[str, list[int]] = {}
        for key, acc in w.clients.items():
            kind = key.split("|", 2)[1]
            for rkey, r in acc.routes.items():
                per_route.setdefault((kind, rkey), []).append(r.count)
            per_kind_routes.setdefault(kind, []).append(len(acc.routes))
        q = self.quantile
        refs = {k: (_quantile(v, q), len(v)) for k, v in per_route.items()}
        routes_refs = {k: _quantile(v, q) for k, v in per_kind_routes.items()}
        end = w.start_ms + self.width_ms
        out = []
        max_routes = self.fold_cfg.max_routes
        for key, acc in w.clients.items():
            kind = key.split("|", 2)[1]
            top = sorted(acc.routes.items(), key=lambda kv: -kv[1].count)[:max_routes]
            routes = {}
            for rkey, r in top:
                ref, pop = refs[(kind, rkey)]
                routes[rkey] = {"count": r.count, "denied": r.denied, "ids": list(r.ids),
                                "paths": len(r.paths), "ref": ref, "population": pop}  # fmt: skip
            rec: RecordDict = {
                "client": key,
                "start_ms": w.start_ms,
                "end_ms": end,
                "first_ms": acc.first_ms,
                "last_ms": acc.last_ms,
                "count": acc.count,
                "routes": routes,
                "route_count": len(acc.routes),
                "routes_ref": routes_refs[kind],
                "services": acc.services,
                "samples": acc.samples,
            }
            # Only what is there: most clients make a request or two per window.
            for name in _COUNTS:
                if value := getattr(acc, name):
                    rec[name] = value
            for name in _SETS:
                if values := getattr(acc, name):
                    rec[name] = list(values)
            if acc.countries:
                rec["countries"] = acc.countries
            out.append(rec)
        return out

    def _login_records(self, w: _Window) -> list[RecordDict]:
        end = w.start_ms + self.width_ms
        return [
            {
                "route": key,
                "start_ms": w.start_ms,
                "end_ms": end,
                "attempts": acc.attempts,
                "failures": acc.failures,
                "failed_users": list(acc.failed_users),
                "ok_users": list(acc.ok_users),
                "failed_ips": acc.failed_ips,
                "samples": acc.samples,
            }
            for key, acc in w.logins.items()
        ]
