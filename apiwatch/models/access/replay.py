"""Offline replay of the access detectors: RUM events in, alert emissions out.

:class:`AccessReplay` runs exactly what the stream runs (the ingest-side
:class:`~apiwatch.models.access.fold.AccessFolder`, the
:class:`~apiwatch.models.access.engine.AccessEngine`, the same trackers and
model keeper), only with a dict for state and event time for the clock. Feed
it batches of validated events in event-time order (as a backtest reads
files), then call :meth:`AccessReplay.finish`.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.events import RumEvent
>>> t0 = 1_767_225_600_000
>>> def ev(i):
...     return RumEvent(timestamp=datetime.fromtimestamp((t0 + i * 500) / 1000, UTC),
...         service="auth", method="POST", path="/login", status=401, duration_ms=9.0,
...         client_ip="203.0.113.5", user_id="admin", event_id=f"e{i}")
>>> replay = AccessReplay(AccessConfig())
>>> out = replay.feed([ev(i) for i in range(60)]) + replay.finish()
>>> [(e.transition, e.alert.kind.value, e.alert.labels["client"]) for e in out]
... # doctest: +NORMALIZE_WHITESPACE
[('firing', 'brute_force', '203.0.113.5'), ('firing', 'brute_force', 'admin'),
 ('resolved', 'brute_force', '203.0.113.5'), ('resolved', 'brute_force', 'admin')]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.engine import AccessEngine, DictStore, Processed
from apiwatch.models.access.features import CONTEXT, FEATURES
from apiwatch.models.access.fold import AccessFolder, RecordDict
from apiwatch.models.access.model import ModelKeeper
from apiwatch.models.access.records import ClientBatch, LoginBatch
from apiwatch.models.events import RumEvent
from apiwatch.models.monitor import Emission


class AccessReplay:
    """The access pipeline over in-memory batches of events, in event time.

    Parameters
    ----------
    cfg
        The ``access`` section of the settings.
    model_path
        Where to load a saved anomalous-client model from (and save refits to);
        None starts without one and keeps refits in memory.
    """

    def __init__(self, cfg: AccessConfig, model_path: Path | None = None) -> None:
        self.cfg = cfg
        self.folder = AccessFolder(cfg)
        self._event_s = 0.0
        # Refits are due by event time here: a replay is as fast as the CPU allows.
        self.keeper = ModelKeeper(
            cfg.model, FEATURES, path=model_path, context=CONTEXT, clock=lambda: self._event_s
        )
        if model_path is not None:
            self.keeper.load(model_path)
        self.engine = AccessEngine(cfg, self.keeper)
        self.clients = DictStore()
        self.logins = DictStore()
        self.open: set[str] = set()
        self._offset = 0

    def feed(self, events: Sequence[RumEvent]) -> list[Emission]:
        """Fold one batch and return what the windows it closed made fire or resolve."""
        offsets = range(self._offset, self._offset + len(events))
        self._offset += len(events)
        self.folder.fold(events, offsets)
        return self._run(*self.folder.close_ready())

    def finish(self) -> list[Emission]:
        """Close every open window, and resolve what has gone quiet by the end."""
        out = self._run(*self.folder.close_ready(everything=True))
        wm = self.folder.watermark_ms
        if wm is not None:
            end = wm + int(self.cfg.incidents.resolve_after_s * 1000)
            out += self._apply(self.engine.expire(sorted(self.open), self.clients, end))
        return out

    def _run(self, clients: list[RecordDict], logins: list[RecordDict]) -> list[Emission]:
        # Records are validated here as the detect stage validates them off the topic.
        out: list[Emission] = []
        if logins:
            batch = LoginBatch.model_validate({"records": logins})
            out += self._apply(self.engine.process(batch, self.logins))
        if clients:
            done = self.engine.process(
                ClientBatch.model_validate({"records": clients}), self.clients
            )
            out += self._apply(done)
            if done.watermark_ms is not None:
                self._event_s = done.watermark_ms / 1000
                stale = sorted(k for k in self.open if k not in done.open)
                out += self._apply(self.engine.expire(stale, self.clients, done.watermark_ms))
            self.keeper.refit_now()
        return out

    def _apply(self, done: Processed) -> list[Emission]:
        for key, is_open in done.open.items():
            (self.open.add if is_open else self.open.discard)(key)
        return done.emissions
