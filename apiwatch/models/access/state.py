"""One client's sliding event-time state, folded from its micro-window records.

:class:`ClientState` is what the access-detect stage keeps per client in a
changelog-backed table (and what the replay keeps in a dict): per-window
counters, per-route slices, capped sets of recent values with their last-seen
time, and the client's country visits. It merges records of the same window
from several source partitions, in any order, and forgets what is older than
the longest detector window, so its JSON state stays bounded.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> s = ClientState("production|ip|10.0.0.1", AccessConfig())
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=5,
...     last_ms=9_000, count=4, login_attempts=4, login_failures=3, failed_users=["a", "b"]))
>>> s.totals(0)[Col.LOGIN_FAIL], s.failed_users.count_since(0)
(3, 2)
>>> ClientState.from_state(AccessConfig(), s.to_state()).to_state() == s.to_state()
True
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.recent import RecentSet, WindowSeries
from apiwatch.models.access.records import ClientKind, ClientWindow, split_client_key

STATE_VERSION = 1
_SAMPLES = 10
_MAX_VISITS = 64
_MAX_SERVICES = 16


class Col(IntEnum):
    """Columns of the per-window counters (offsets into :meth:`ClientState.totals`)."""

    COUNT = 0
    E4XX = 1
    E5XX = 2
    NOT_FOUND = 3
    WRITES = 4
    LOGIN_ATT = 5
    LOGIN_FAIL = 6
    KBYTES = 7
    SCANNER = 8
    ROUTES = 9  # distinct routes in the window (max over partitions)
    ROUTES_REF_MILLI = 10  # population quantile of distinct routes x 1000 (max)


class RCol(IntEnum):
    """Columns of the per-route, per-window slices."""

    COUNT = 0
    DENIED = 1
    PATHS = 2
    REF_MILLI = 3  # population quantile of per-client requests x 1000 (max)
    POPULATION = 4  # clients of the same kind on the route (max)


_SETS = (
    "users",
    "failed_users",
    "ips",
    "failed_ips",
    "paths_404",
    "sensitive",
    "agents",
    "scanner_agents",
)
_MAXED = frozenset((Col.ROUTES, Col.ROUTES_REF_MILLI))
_RMAXED = frozenset((RCol.REF_MILLI, RCol.POPULATION))


def short_horizon_s(cfg: AccessConfig) -> float:
    """The longest window of the detectors that read the short-lived state."""
    return max(
        cfg.brute_force.window_s,
        cfg.stuffing.window_s,
        cfg.enumeration.window_s,
        cfg.scraping.window_s,
        cfg.probing.window_s,
        cfg.model.window_s,
    )


class ClientState:
    """Sliding-window state of one client (IP, user or credential)."""

    def __init__(self, client: str, cfg: AccessConfig) -> None:
        self.client = client
        self.environment, self.kind, self.value = split_client_key(client)
        self.cfg = cfg
        cap = cfg.fold.max_values
        self.counters = WindowSeries(len(Col))
        self.routes: dict[str, WindowSeries] = {}
        self.ids: dict[str, RecentSet] = {}
        self.users = RecentSet(cap)
        self.failed_users = RecentSet(cap)
        self.ips = RecentSet(cap)
        self.failed_ips = RecentSet(cap)
        self.paths_404 = RecentSet(cap)
        self.sensitive = RecentSet(cap)
        self.agents = RecentSet(16)
        self.scanner_agents = RecentSet(4)
        self.visits: list[list[Any]] = []  # [country, first_ms, last_ms, count], by first_ms
        self.services: dict[str, int] = {}
        self.samples: list[str] = []
        self.first_seen_ms: int | None = None
        self.last_seen_ms: int | None = None
        self.records = 0
        self.short_horizon_ms = int(short_horizon_s(cfg) * 1000)
        self._totals: dict[int, list[int]] = {}

    # -- merging --------------------------------------------------------------

    def merge(self, r: ClientWindow) -> None:
        """Fold one micro-window record (possibly one of several for the same window)."""
        t = r.last_ms
        self._totals.clear()
        self.records += 1
        self.first_seen_ms = (
            r.first_ms if self.first_seen_ms is None else min(self.first_seen_ms, r.first_ms)
        )
        self.last_seen_ms = t if self.last_seen_ms is None else max(self.last_seen_ms, t)
        row = [0] * len(Col)
        row[Col.COUNT] = r.count
        row[Col.E4XX] = r.errors_4xx
        row[Col.E5XX] = r.errors_5xx
        row[Col.NOT_FOUND] = r.not_found
        row[Col.WRITES] = r.writes
        row[Col.LOGIN_ATT] = r.login_attempts
        row[Col.LOGIN_FAIL] = r.login_failures
        row[Col.KBYTES] = r.response_bytes // 1024
        row[Col.SCANNER] = r.scanner_requests
        row[Col.ROUTES] = r.route_count
        row[Col.ROUTES_REF_MILLI] = int(r.routes_ref * 1000)
        self.counters.add(r.start_ms, row, _MAXED)
        for rkey, sl in r.routes.items():
            series = self.routes.get(rkey)
            if series is None:
                series = self.routes[rkey] = WindowSeries(len(RCol))
            series.add(
                r.start_ms,
                [sl.count, sl.denied, sl.paths, int(sl.ref * 1000), sl.population],
                _RMAXED,
            )
            if sl.ids:
                ids = self.ids.get(rkey)
                if ids is None:
                    ids = self.ids[rkey] = RecentSet(self.cfg.fold.max_values)
                ids.update(sl.ids, t)
        for name in _SETS:
            if values := getattr(r, name):  # most records carry one or two of these
                getattr(self, name).update(values, t)
        for country, (first, last, n) in sorted(r.countries.items(), key=lambda kv: kv[1][0]):
            self._visit(country, first, last, n)
        for service, n in r.services.items():
            self.services[service] = self.services.get(service, 0) + n
        if len(self.services) > _MAX_SERVICES:
            keep = sorted(self.services.items(), key=lambda kv: -kv[1])[:_MAX_SERVICES]
            self.services = dict(keep)
        self.samples = (self.samples + r.samples)[-_SAMPLES:]
        self.prune(self.last_seen_ms)

    def _visit(self, country: str, first: int, last: int, n: int) -> None:
        # Extend the latest visit of this country if no other country was seen since.
        for v in reversed(self.visits):
            if v[0] == country:
                if not any(w[0] != country and w[1] > v[1] and w[1] <= first for w in self.visits):
                    v[1], v[2], v[3] = min(v[1], first), max(v[2], last), v[3] + n
                    return
                break
        self.visits.append([country, first, last, n])
        self.visits.sort(key=lambda v: v[1])
        del self.visits[:-_MAX_VISITS]

    def prune(self, now_ms: int) -> None:
        """Forget everything older than the window of the detector that reads it."""
        self._totals.clear()
        short = now_ms - self.short_horizon_ms
        self.counters.prune(short)
        for rkey in list(self.routes):
            self.routes[rkey].prune(short)
            if not self.routes[rkey].rows:
                del self.routes[rkey]
        for rkey in list(self.ids):
            self.ids[rkey].prune(short)
            if not self.ids[rkey].values:
                del self.ids[rkey]
        for s in (self.users, self.failed_users, self.failed_ips, self.paths_404, self.sensitive):
            if s.values:
                s.prune(short)
        self.agents.prune(short)
        self.scanner_agents.prune(short)
        self.ips.prune(now_ms - int(self.cfg.token_sharing.window_s * 1000))
        travel = now_ms - int(self.cfg.travel.window_s * 1000)
        if any(v[2] < travel for v in self.visits):
            self.visits = [v for v in self.visits if v[2] >= travel]

    # -- queries ----------------------------------------------------------------

    def totals(self, since_ms: int) -> list[int]:
        """Counters summed since ``since_ms`` (memoised until the next merge or prune)."""
        got = self._totals.get(since_ms)
        if got is None:
            got = self._totals[since_ms] = self.counters.sum_since(since_ms)
        return got

    def main_service(self) -> str | None:
        return max(self.services, key=lambda s: self.services[s]) if self.services else None

    @property
    def is_ip(self) -> bool:
        return self.kind is ClientKind.IP

    # -- state --------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-able state. It shares containers with this object, which is why the
        engine saves a state and drops the object, and :meth:`from_state` adopts
        containers instead of copying them: loading and saving run per record."""
        return {
            "v": STATE_VERSION,
            "client": self.client,
            "counters": self.counters.to_state(),
            "routes": {k: s.to_state() for k, s in self.routes.items()},
            "ids": {k: s.to_state() for k, s in self.ids.items()},
            "sets": {
                name: values.to_state() for name in _SETS if (values := getattr(self, name)).values
            },
            "visits": self.visits,
            "services": self.services,
            "samples": self.samples,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "records": self.records,
        }

    @classmethod
    def from_state(cls, cfg: AccessConfig, state: dict[str, Any]) -> ClientState:
        """Resume from :meth:`to_state`; takes the state's containers over (loading is hot)."""
        s = cls(state["client"], cfg)
        s.counters = WindowSeries.adopt(len(Col), state.get("counters", []))
        s.routes = {k: WindowSeries.adopt(len(RCol), v) for k, v in state.get("routes", {}).items()}
        cap = cfg.fold.max_values
        s.ids = {k: RecentSet.adopt(cap, v) for k, v in state.get("ids", {}).items()}
        for name, values in state.get("sets", {}).items():
            current: RecentSet = getattr(s, name)
            setattr(s, name, RecentSet.adopt(current.cap, values))
        s.visits = state.get("visits", [])
        s.services = state.get("services", {})
        s.samples = state.get("samples", [])
        s.first_seen_ms = state.get("first_seen_ms")
        s.last_seen_ms = state.get("last_seen_ms")
        s.records = int(state.get("records", 0))
        return s
