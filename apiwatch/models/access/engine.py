"""The access-detect step, shared by the Faust stage and the offline replay.

:class:`AccessEngine` takes one decoded batch from the access topic and a
:class:`StateStore` (a Faust table in the stream, a dict in the replay),
runs every tracker the batch touches, scores the touched clients with the
anomalous-client model in one call, and returns the alert emissions. Each
tracker is loaded once and saved once per batch, whatever number of records
it got, so state writes (changelog records) stay one per key per batch.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientBatch, ClientWindow
>>> engine = AccessEngine(AccessConfig())
>>> store: dict = {}
>>> rec = ClientWindow(client="production|ip|192.0.2.7", start_ms=0, end_ms=10_000,
...     first_ms=0, last_ms=9_000, count=2, scanner_requests=2, scanner_agents=["sqlmap/1.8"])
>>> done = engine.process(ClientBatch(records=[rec]), DictStore(store))
>>> [e.alert.kind.value for e in done.emissions], done.open, done.watermark_ms
(['probing'], {'production|ip|192.0.2.7': True}, 9000)
>>> sorted(store)
['production|ip|192.0.2.7']
>>> [e.transition for e in engine.expire(["production|ip|192.0.2.7"], DictStore(store),
...     700_000).emissions]
['resolved']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.detectors.base import Finding
from apiwatch.models.access.features import FEATURES, client_features, shown
from apiwatch.models.access.model import ModelKeeper
from apiwatch.models.access.records import ClientBatch, ClientKind, LoginBatch
from apiwatch.models.access.tracker import ClientTracker, LoginRouteTracker, client_detectors
from apiwatch.models.alerts import AlertKind, Observed, Severity
from apiwatch.models.monitor import Emission

#: Client kinds the model scores: the ones an abusive actor controls directly.
MODEL_KINDS = frozenset({ClientKind.IP, ClientKind.CREDENTIAL})


class StateStore(Protocol):
    """Per-key JSON-able state: a Faust table in the stream, a dict offline."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, state: dict[str, Any]) -> None: ...


class DictStore:
    """A :class:`StateStore` over a plain dict (replay, tests)."""

    def __init__(self, data: dict[str, dict[str, Any]] | None = None) -> None:
        self.data = data if data is not None else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, state: dict[str, Any]) -> None:
        self.data[key] = state


@dataclass
class Processed:
    """What one step produced: alerts, which keys now have open incidents, event time reached."""

    emissions: list[Emission] = field(default_factory=list)
    open: dict[str, bool] = field(default_factory=dict)
    watermark_ms: int | None = None


class AccessEngine:
    """Trackers, rule detectors and the anomalous-client model over access batches."""

    def __init__(
        self, cfg: AccessConfig, model: ModelKeeper | None = None, live_trackers: int = 100_000
    ) -> None:
        self.cfg = cfg
        self.live_trackers = live_trackers
        self._live: OrderedDict[str, tuple[dict[str, Any], ClientTracker]] = OrderedDict()
        self.detectors = client_detectors(cfg)
        self.model = model
        self.records = 0
        self.scored = 0

    def process(self, batch: ClientBatch | LoginBatch, store: StateStore) -> Processed:
        if isinstance(batch, LoginBatch):
            return self._logins(batch, store)
        return self._clients(batch, store)

    def expire(self, keys: Iterable[str], store: StateStore, now_ms: int) -> Processed:
        """Resolve quiet incidents of ``keys`` (clients that may have gone away) at ``now_ms``."""
        done = Processed(watermark_ms=now_ms)
        for key in keys:
            saved = store.get(key)
            if saved is None:
                continue
            t = self._load(key, store)
            ems = t.expire(now_ms)
            if ems:
                done.emissions.extend(ems)
                self._save(key, t, store)
            done.open[key] = bool(t.open_incidents)
        return done

    def _logins(self, batch: LoginBatch, store: StateStore) -> Processed:
        out: list[Emission] = []
        trackers: dict[str, LoginRouteTracker] = {}
        for rec in batch.records:
            t = trackers.get(rec.route)
            if t is None:
                saved = store.get(rec.route)
                t = (
                    LoginRouteTracker.from_state(self.cfg, saved)
                    if saved is not None
                    else LoginRouteTracker(self.cfg, rec.route)
                )
                trackers[rec.route] = t
            out.extend(t.observe(rec))
            self.records += 1
        for key, t in trackers.items():
            store.put(key, t.to_state())
        wm = max((r.end_ms for r in batch.records), default=None)
        return Processed(out, {}, wm)

    def _clients(self, batch: ClientBatch, store: StateStore) -> Processed:
        out: list[Emission] = []
        trackers: dict[str, ClientTracker] = {}
        for rec in batch.records:
            t = trackers.get(rec.client)
            if t is None:
                t = trackers[rec.client] = self._load(rec.client, store)
            out.extend(t.observe(rec))
            self.records += 1
        if self.model is not None and self.cfg.model.enabled:
            out.extend(self._score(list(trackers.values())))
        for key, t in trackers.items():
            self._save(key, t, store)
        wm = max((r.last_ms for r in batch.records), default=None)
        return Processed(out, {k: bool(t.open_incidents) for k, t in trackers.items()}, wm)

    def _load(self, client: str, store: StateStore) -> ClientTracker:
        saved = store.get(client)
        if saved is None:
            return ClientTracker(self.cfg, client, self.detectors)
        live = self._live.get(client)
        # The store still holds the very state this tracker saved: reuse the tracker
        # and skip rebuilding it. After a restore or a rebalance the stored state is a
        # new object (read from the changelog) and the tracker is rebuilt from it.
        if live is not None and live[0] is saved:
            self._live.move_to_end(client)
            return live[1]
        return ClientTracker.from_state(self.cfg, self.detectors, saved)

    def _save(self, client: str, tracker: ClientTracker, store: StateStore) -> None:
        state = tracker.to_state()
        store.put(client, state)
        self._live[client] = (state, tracker)
        self._live.move_to_end(client)
        while len(self._live) > self.live_trackers:
            self._live.popitem(last=False)

    def _score(self, trackers: list[ClientTracker]) -> list[Emission]:
        assert self.model is not None
        mc = self.cfg.model
        rows: list[list[float]] = []
        judged: list[tuple[ClientTracker, int]] = []
        for t in trackers:
            s = t.state
            now = s.last_seen_ms
            if s.kind not in MODEL_KINDS or now is None:
                continue
            if s.totals(now - int(mc.window_s * 1000))[0] < mc.min_requests:
                continue
            row = client_features(s, now, mc.window_s, self.cfg.fold.window_s)
            rows.append(row)
            judged.append((t, now))
            if not t.open_incidents:  # the model never learns from a known attack
                self.model.sample.add(row)
        model = self.model.model
        if model is None or not rows:
            return []
        self.scored += len(rows)
        verdicts = model.judge(np.asarray(rows), mc.min_feature_z, mc.top_features)
        out: list[Emission] = []
        for (t, now), why in zip(judged, verdicts, strict=True):
            finding = _model_finding(why, mc.window_s, t.state.totals(0)[0]) if why else None
            em = t.flag(finding, now)
            if em is not None:
                out.append(em)
        return out


def _model_finding(
    why: list[tuple[str, float, float, float]], window_s: float, requests: int
) -> Finding:
    parts = [
        f"{name.replace('_', ' ')} {shown(name, v):g} (typical {shown(name, typ):g})"
        for name, v, typ, _ in why
    ]
    return Finding(
        kind=AlertKind.ANOMALOUS_CLIENT,
        summary="unlike other clients: " + ", ".join(parts),
        observed=Observed(
            value=round(abs(why[0][3]), 2), unit="robust z", window_s=window_s, sample_size=requests
        ),
        score=abs(why[0][3]),
        severity=Severity.INFO,
        details={
            "features": [
                {"feature": n, "value": shown(n, v), "typical": shown(n, typ), "z": round(z, 2)}
                for n, v, typ, z in why
            ],
            "model_features": list(FEATURES),
        },
    )
