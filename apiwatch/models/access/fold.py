"""Fold validated RUM events into per-client and per-login-route micro-windows.

This is the access path's share of the hot loop: the ingest stage hands each
valid batch of one source partition to an :class:`AccessFolder`, which adds
every event to the open micro-window of each of its clients (the IP, the user
id, the credential id, each where present) and, for logins, of its route. All
sets are capped, so a window's memory is bounded by its event count and its
output by the caps, whatever the traffic.

Windows close by event time, once the partition's watermark passes ``end +
allowed lateness``. Closing a window computes, per route, the population
reference (a quantile of per-client request counts among clients of the same
kind) and writes it into every client's slice, so the scraping detector can
compare a client with its population without any cross-key lookup. A late
event reopens its old window, which closes again at the next flush: the
detect stage merges records of the same window, so nothing is dropped.

:meth:`AccessFolder.committable` is the lowest source offset still held in an
open window: the ingest stage commits no further until that window is flushed.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.events import RumEvent
>>> from apiwatch.models.access.config import AccessConfig
>>> T0 = 1_767_225_600_000
>>> def ev(ms, status=401, user="a"):
...     return RumEvent(timestamp=datetime.fromtimestamp((T0 + ms) / 1000, UTC), service="auth",
...         method="POST", path="/login", status=status, duration_ms=5.0,
...         client_ip="10.0.0.9", user_id=user)
>>> f = AccessFolder(AccessConfig())
>>> f.fold([ev(1_000), ev(2_000, user="b"), ev(30_000)], [7, 8, 9])
>>> f.committable()
7
>>> clients, logins = f.close_ready()
>>> sorted((c["client"], c["count"], c["login_failures"]) for c in clients)
[('production|ip|10.0.0.9', 2, 2), ('production|user|a', 1, 1), ('production|user|b', 1, 1)]
>>> [(w["route"], w["attempts"], sorted(w["failed_users"])) for w in logins]
[('production|auth|POST|/login', 2, ['a', 'b'])]
>>> f.committable()
9
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiwatch.models.access.allowlist import AllowList
from apiwatch.models.access.classify import RequestClassifier
from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.records import ClientKind, route_key
from apiwatch.models.events import RumEvent

#: Longest value kept in a set (paths, agents): longer ones are cut, never trusted whole.
MAX_VALUE_CHARS = 200
_MAX_AGENTS = 8
_MAX_SCANNERS = 3
_MAX_LOGIN_VALUES = 256
_MAX_LOGIN_IPS = 64
#: Distinct (service, method, route) classified and remembered before the memo starts over.
_MAX_ROUTES_CACHED = 65_536
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_COUNTS = ("errors_4xx", "errors_5xx", "not_found", "writes", "login_attempts",
           "login_failures", "response_bytes", "scanner_requests")  # fmt: skip
_SETS = ("users", "failed_users", "ips", "failed_ips", "agents", "paths_404", "sensitive",
         "scanner_agents")  # fmt: skip

#: A record as a plain JSON-able dict (see :class:`~apiwatch.models.access.records.ClientWindow`).
RecordDict = dict[str, Any]
#: A capped set that remembers the order values came in (a dict with None values).
Values = dict[str, None]


class _Route:
    """What the fold needs to know about one (service, method, route), worked out once."""

    __slots__ = ("key", "login", "parts", "slots", "templated", "write")

    def __init__(self, service: str, method: str, route: str, login: bool) -> None:
        self.key = route_key(service, method, route)
        self.login = login
        self.write = method not in _READS
        self.templated = "{" in route
        parts = route.split("/")
        self.parts = len(parts)
        # Positions of the placeholders: a concrete path's object ids sit there.
        self.slots = tuple(i for i, p in enumerate(parts) if p.startswith("{"))

    def ids(self, path: str) -> str | None:
        """The values of the route's placeholders in ``path``, joined by '/'; None if none.

        >>> _Route("s", "GET", "/users/{id}/orders/{id}", False).ids("/users/42/orders/7")
        '42/7'
        """
        if not self.slots:
            return None
        parts = path.split("/")
        if len(parts) != self.parts:
            return None
        return "/".join([parts[i] for i in self.slots])


class _RouteAcc:
    __slots__ = ("count", "denied", "ids", "paths")

    def __init__(self) -> None:
        self.count = 0
        self.denied = 0
        self.ids: Values | None = None
        self.paths: Values = {}


class _ClientAcc:
    """One client's open micro-window. Sets are made when first needed: most stay empty."""

    __slots__ = (
        "agents",
        "count",
        "countries",
        "errors_4xx",
        "errors_5xx",
        "failed_ips",
        "failed_users",
        "first_ms",
        "ips",
        "kind",
        "last_ms",
        "login_attempts",
        "login_failures",
        "not_found",
        "paths_404",
        "response_bytes",
        "routes",
        "samples",
        "scanner_agents",
        "scanner_requests",
        "sensitive",
        "services",
        "users",
        "writes",
    )  # fmt: skip

    def __init__(self, kind: str, ms: int) -> None:
        self.kind = kind
        self.first_ms = ms
        self.last_ms = ms
        self.count = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.not_found = 0
        self.writes = 0
        self.login_attempts = 0
        self.login_failures = 0
        self.response_bytes = 0
        self.scanner_requests = 0
        self.routes: dict[str, _RouteAcc] = {}
        self.services: dict[str, int] = {}
        self.users: Values | None = None  # of an IP
        self.failed_users: Values | None = None
        self.ips: Values | None = None  # of a user or credential
        self.failed_ips: Values | None = None
        self.countries: dict[str, list[int]] = {}
        self.agents: Values | None = None
        self.paths_404: Values | None = None
        self.sensitive: Values | None = None
        self.scanner_agents: Values | None = None
        self.samples: list[str] = []


class _LoginAcc:
    __slots__ = ("attempts", "failed_ips", "failed_users", "failures", "ok_users", "samples")

    def __init__(self) -> None:
        self.attempts = 0
        self.failures = 0
        self.failed_users: Values = {}
        self.ok_users: Values = {}
        self.failed_ips: dict[str, int] = {}
        self.samples: list[str] = []


class _Window:
    __slots__ = ("clients", "logins", "min_offset", "start_ms")

    def __init__(self, start_ms: int, min_offset: int) -> None:
        self.start_ms = start_ms
        self.min_offset = min_offset
        self.clients: dict[str, _ClientAcc] = {}
        self.logins: dict[str, _LoginAcc] = {}


def _put(values: Values, value: str, cap: int) -> None:
    """Add ``value`` (cut to :data:`MAX_VALUE_CHARS`) unless ``cap`` values are there."""
    if len(values) < cap:
        values[value[:MAX_VALUE_CHARS]] = None


def _quantile(values: list[int], q: float) -> float:
    """Nearest-rank quantile.

    >>> _quantile([1, 2, 3, 4, 100], 0.5)
    3.0
    """
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class AccessFolder:
    """Open micro-windows of one source partition, folded batch by batch.

    The hot loop reads each event's fields once, classifies its route once per
    distinct (service, method, route) and only touches a client's rarer sets
    (failed users, 404 paths, sensitive paths, scanner agents) when the event
    calls for it; every set is created when first needed. The records are the
    same as a plain per-event, per-client fold would give
    (``tests/access/reference_fold.py`` is that fold, and the tests compare them).
    """

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
        self._routes: dict[tuple[str, str, str], _Route] = {}
        self._prefixes: dict[str, tuple[str, str, str]] = {}

    # -- folding ------------------------------------------------------------

    def _route(self, service: str, method: str, route: str) -> _Route:
        if len(self._routes) >= _MAX_ROUTES_CACHED:
            self._routes.clear()
        info = self._routes[(service, method, route)] = _Route(
            service, method, route, self.classify.is_login(method, route)
        )
        return info

    def _key_prefixes(self, env: str) -> tuple[str, str, str]:
        p = self._prefixes.get(env)
        if p is None:
            if len(self._prefixes) >= 1024:
                self._prefixes.clear()
            p = self._prefixes[env] = tuple(  # type: ignore[assignment]
                f"{env}|{k.value}|" for k in (ClientKind.IP, ClientKind.USER, ClientKind.CREDENTIAL)
            )
        return p  # type: ignore[return-value]

    def fold(self, events: Sequence[RumEvent], offsets: Sequence[int]) -> None:
        """Add a batch of valid events; ``offsets`` are their source offsets."""
        if len(events) != len(offsets):
            raise ValueError(f"{len(events)} events but {len(offsets)} offsets")
        cfg = self.fold_cfg
        cap = cfg.max_values
        n_samples = cfg.sample_ids
        width = self.width_ms
        too_late = self._flushed_through - width - self.lateness_ms
        origin = self.origin
        allow = None if self.allow.empty else self.allow.allows
        routes = self._routes
        new_route = self._route
        prefixes = self._key_prefixes
        classify = self.classify
        failures = classify.auth_failures
        is_scanner = classify.is_scanner
        is_sensitive = classify.is_sensitive
        windows = self.windows
        wm = self.watermark_ms if self.watermark_ms is not None else -(2**62)
        window: _Window | None = None
        w_start = None
        allowed = late = 0
        ip_kind, user_kind, cred_kind = "ip", "user", "credential"
        for e, offset in zip(events, offsets, strict=True):
            ip = e.client_ip
            agent = e.user_agent
            user = e.user_id
            cred = e.credential_id
            if allow is not None and allow(ip, agent, user, cred):
                allowed += 1
                continue
            ms = e.epoch_ms
            if ms > wm:
                wm = ms
            start = ms - ms % width
            if start <= too_late:
                late += 1
            if start != w_start:
                window = windows.get(start)
                if window is None:
                    window = windows[start] = _Window(start, offset)
                w_start = start
            assert window is not None
            if offset < window.min_offset:
                window.min_offset = offset
            service = e.service
            method = e.method
            path = e.path
            status = e.status
            route = e.route or path
            info = routes.get((service, method, route))
            if info is None:
                info = new_route(service, method, route)
            login = info.login
            failed = login and status in failures
            ids = info.ids(path) if info.templated else None
            sensitive = is_sensitive(path)
            scanner = bool(agent) and is_scanner(agent)  # type: ignore[arg-type]
            country = e.country
            nbytes = e.response_bytes
            event_id = e.event_id
            if event_id is None and origin is not None:
                event_id = f"{origin}:{offset}"
            env = e.environment
            p_ip, p_user, p_cred = prefixes(env)
            rkey = info.key
            clients = window.clients
            for kind, key in (
                (ip_kind, p_ip + ip),
                (user_kind, None if user is None else p_user + user),
                (cred_kind, None if cred is None else p_cred + cred),
            ):
                if key is None:
                    continue
                acc = clients.get(key)
                if acc is None:
                    acc = clients[key] = _ClientAcc(kind, ms)
                acc.count += 1
                if ms < acc.first_ms:
                    acc.first_ms = ms
                elif ms > acc.last_ms:
                    acc.last_ms = ms
                if status >= 400:
                    if status < 500:
                        acc.errors_4xx += 1
                        if status == 404:
                            acc.not_found += 1
                            # A missing object on a real route is enumeration's business; a
                            # path that matches no route shape at all is what a probe asks for.
                            if not info.templated:
                                if acc.paths_404 is None:
                                    acc.paths_404 = {}
                                _put(acc.paths_404, path, cap)
                    else:
                        acc.errors_5xx += 1
                if info.write:
                    acc.writes += 1
                if nbytes:
                    acc.response_bytes += nbytes
                svc = acc.services
                svc[service] = svc.get(service, 0) + 1
                r = acc.routes.get(rkey)
                if r is None:
                    r = acc.routes[rkey] = _RouteAcc()
                r.count += 1
                if status == 403 or status == 404:
                    r.denied += 1
                if len(r.paths) < cap:
                    r.paths[path[:MAX_VALUE_CHARS]] = None
                if ids is not None:
                    if r.ids is None:
                        r.ids = {}
                    if len(r.ids) < cap:
                        r.ids[ids[:MAX_VALUE_CHARS]] = None
                if login:
                    acc.login_attempts += 1
                    if failed:
                        acc.login_failures += 1
                if kind is ip_kind:
                    if user is not None:
                        if acc.users is None:
                            acc.users = {}
                        if len(acc.users) < cap:
                            acc.users[user[:MAX_VALUE_CHARS]] = None
                        if failed:
                            if acc.failed_users is None:
                                acc.failed_users = {}
                            _put(acc.failed_users, user, cap)
                else:
                    if acc.ips is None:
                        acc.ips = {}
                    if len(acc.ips) < cap:
                        acc.ips[ip[:MAX_VALUE_CHARS]] = None
                    if failed:
                        if acc.failed_ips is None:
                            acc.failed_ips = {}
                        _put(acc.failed_ips, ip, cap)
                if country is not None:
                    seen = acc.countries.get(country)
                    if seen is None:
                        acc.countries[country] = [ms, ms, 1]
                    else:
                        if ms < seen[0]:
                            seen[0] = ms
                        elif ms > seen[1]:
                            seen[1] = ms
                        seen[2] += 1
                if agent:
                    if acc.agents is None:
                        acc.agents = {}
                    if len(acc.agents) < _MAX_AGENTS:
                        acc.agents[agent[:MAX_VALUE_CHARS]] = None
                    if scanner:
                        acc.scanner_requests += 1
                        if acc.scanner_agents is None:
                            acc.scanner_agents = {}
                        _put(acc.scanner_agents, agent, _MAX_SCANNERS)
                if sensitive:
                    if acc.sensitive is None:
                        acc.sensitive = {}
                    _put(acc.sensitive, path, cap)
                if event_id is not None and len(acc.samples) < n_samples:
                    acc.samples.append(event_id)
            if login:
                lkey = f"{env}|{service}|{method}|{route}"
                lacc = window.logins.get(lkey)
                if lacc is None:
                    lacc = window.logins[lkey] = _LoginAcc()
                lacc.attempts += 1
                if failed:
                    lacc.failures += 1
                    if user is not None:
                        _put(lacc.failed_users, user, _MAX_LOGIN_VALUES)
                    if ip in lacc.failed_ips or len(lacc.failed_ips) < _MAX_LOGIN_IPS:
                        lacc.failed_ips[ip] = lacc.failed_ips.get(ip, 0) + 1
                    if event_id is not None and len(lacc.samples) < n_samples:
                        lacc.samples.append(event_id)
                elif status < 400 and user is not None:
                    _put(lacc.ok_users, user, _MAX_LOGIN_VALUES)
        if wm > -(2**62):
            self.watermark_ms = wm
        self.allowed_total += allowed
        self.late_total += late

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
        for acc in w.clients.values():
            kind = acc.kind
            for rkey, r in acc.routes.items():
                counts = per_route.get((kind, rkey))
                if counts is None:
                    per_route[(kind, rkey)] = [r.count]
                else:
                    counts.append(r.count)
            per_kind_routes.setdefault(kind, []).append(len(acc.routes))
        q = self.quantile
        refs = {k: (_quantile(v, q), len(v)) for k, v in per_route.items()}
        routes_refs = {k: _quantile(v, q) for k, v in per_kind_routes.items()}
        start = w.start_ms
        end = start + self.width_ms
        out = []
        max_routes = self.fold_cfg.max_routes
        for key, acc in w.clients.items():
            kind = acc.kind
            items = acc.routes.items()
            if len(items) > 1:
                items = sorted(items, key=lambda kv: -kv[1].count)[:max_routes]  # type: ignore[assignment]
            routes = {}
            for rkey, r in items:
                ref, pop = refs[(kind, rkey)]
                routes[rkey] = {"count": r.count, "denied": r.denied,
                                "ids": list(r.ids) if r.ids else [], "paths": len(r.paths),
                                "ref": ref, "population": pop}  # fmt: skip
            rec: RecordDict = {
                "client": key,
                "start_ms": start,
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
