"""The anomalous-client model: an IsolationForest over per-client window features.

:class:`RollingSample` keeps the most recent feature rows (a ring buffer, so
the model follows the traffic as it changes). :func:`fit` trains a forest on
it and sets the alert threshold at a low quantile (``contamination``) of the
training scores. The forest alone is not enough to alert: its splits fall
inside the training range, so a row far beyond it on one feature scores like
the sample's own extremes, and a quantile flags a fixed share of ordinary rows. So a row
must also stand out on at least one feature, by a robust z-score (median, and MAD or
the sample's range) of ``min_feature_z`` and beyond the sample's 99.9 % quantile (a value
the sample's own top clients reach is not unusual): the forest ranks, the z-scores
confirm and explain. A heavy client that has
been around for a while is dense in the rolling sample (one row per window),
so the forest does not isolate it; a newcomer far from everyone is.

:class:`ModelKeeper` owns the current model and refits it in the background
(an executor), swapping the new model in only when it is ready, so the stream
never waits for a fit; it saves each model so a restart is not blind.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> normal = rng.normal(0, 1, size=(600, 3))
>>> m = fit(normal, ("a", "b", "c"), n_estimators=50, max_samples=128, seed=0)
>>> [None if j is None else j[0][0] for j in m.judge(np.array([[0.0, 0.1, -0.2], [9.0, 0, 0]]))]
[None, 'a']
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from apiwatch.models.access.config import ModelConfig

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
MODEL_FORMAT = 2  # 2: ClientModel.upper


class RollingSample:
    """The last ``size`` feature rows, oldest overwritten first."""

    def __init__(self, size: int, width: int) -> None:
        self.rows = np.zeros((size, width))
        self.size = size
        self.filled = 0
        self.next = 0
        self.added = 0

    def add(self, row: list[float]) -> None:
        self.rows[self.next] = row
        self.next = (self.next + 1) % self.size
        self.filled = min(self.size, self.filled + 1)
        self.added += 1

    def snapshot(self) -> Matrix:
        """A copy: the fit runs on it while new rows keep arriving."""
        return self.rows[: self.filled].copy()


@dataclass
class ClientModel:
    """A fitted forest, its alert threshold, and the sample's medians, spreads and tops."""

    forest: IsolationForest
    features: tuple[str, ...]
    threshold: float
    median: Matrix
    spread: Matrix
    rows: int
    context: npt.NDArray[np.bool_]
    upper: Matrix  # the sample's 99.9 % quantile: what nearly every client stays within

    def score(self, rows: Matrix) -> Matrix:
        """IsolationForest ``score_samples``: lower is more anomalous."""
        return np.asarray(self.forest.score_samples(rows), dtype=np.float64)

    def judge(
        self, rows: Matrix, min_z: float = 6.0, top: int = 3
    ) -> list[list[tuple[str, float, float, float]] | None]:
        """Per row: the explanation when the row is anomalous, else None."""
        scores = self.score(rows)
        out: list[list[tuple[str, float, float, float]] | None] = []
        for row, score in zip(rows, scores, strict=True):
            if score >= self.threshold:
                out.append(None)
                continue
            # Standing out means beyond what nearly every client in the sample does, by
            # min_z: a value the sample's own busiest clients reach is not unusual
            # (a client using every route of the API reaches the top of the range).
            z = (row - self.median) / self.spread
            out_there = (z >= min_z) & (row > self.upper) & ~self.context
            out.append(self.explain(row, top) if out_there.any() else None)
        return out

    def explain(self, row: Matrix, top: int = 3) -> list[tuple[str, float, float, float]]:
        """(feature, value, typical value, robust z) of the ``top`` features most above typical.

        One-sided on purpose: more errors, refusals, routes or agents than anyone
        is suspicious; fewer (a partner calling two routes) is not. Context
        features (time of day) shape the forest but never explain an alert.
        """
        z = (row - self.median) / self.spread
        z[self.context] = -np.inf
        order = np.argsort(-z)[:top]
        return [
            (self.features[i], float(row[i]), float(self.median[i]), float(z[i])) for i in order
        ]


def fit(
    rows: Matrix,
    features: tuple[str, ...],
    n_estimators: int = 100,
    max_samples: int = 256,
    contamination: float = 0.05,
    seed: int = 0,
    context: frozenset[str] = frozenset(),
) -> ClientModel:
    """Train on ``rows``; pure and CPU-bound, safe to run in an executor."""
    median = np.median(rows, axis=0)
    mad = np.median(np.abs(rows - median), axis=0) * 1.4826
    # Features of real traffic are lumpy (most clients: one user agent, no 404), so
    # the MAD is often 0. The spread is at least a sixth of the sample's 0.1-99.9 %
    # range, so "z >= 6" reads "beyond the range nearly every client stays in",
    # and never less than 0.05 (a feature constant in the sample).
    lo, hi = np.quantile(rows, [0.001, 0.999], axis=0)
    spread = np.maximum(np.maximum(mad, (hi - lo) / 6), 0.05)
    # Trees cannot split on a feature that is constant in the sample, so a client
    # that differs only there would look normal; a little jitter makes every
    # feature splittable without moving the sample.
    rng = np.random.default_rng(seed)
    jittered = rows + rng.normal(0.0, 0.1, rows.shape) * spread
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, len(rows)),
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(jittered)
    train = forest.score_samples(jittered)
    return ClientModel(
        forest=forest,
        features=features,
        threshold=float(np.quantile(train, contamination)),
        median=median,
        spread=spread,
        rows=len(rows),
        context=np.array([f in context for f in features]),
        upper=hi,
    )


FitFn = Callable[[Matrix], ClientModel]


class ModelKeeper:
    """The current model, its rolling sample, and background refits that never block."""

    def __init__(
        self,
        cfg: ModelConfig,
        features: tuple[str, ...],
        path: Path | None = None,
        context: frozenset[str] = frozenset(),
        fit_fn: FitFn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.features = features
        self.context = context
        self.path = path
        self.sample = RollingSample(cfg.sample_size, len(features))
        self.model: ClientModel | None = None
        self.fit_fn: FitFn = fit_fn or self._fit
        self.clock = clock
        self.refit: Future[ClientModel] | None = None
        self.last_fit: float | None = None
        self.fits = 0
        self._lock = threading.Lock()

    def _fit(self, rows: Matrix) -> ClientModel:
        c = self.cfg
        return fit(
            rows, self.features, c.n_estimators, c.max_samples, c.contamination, c.seed,
            self.context,
        )  # fmt: skip

    def due(self) -> bool:
        if self.refit is not None or self.sample.filled < self.cfg.min_fit_rows:
            return False
        return self.last_fit is None or self.clock() - self.last_fit >= self.cfg.refit_interval_s

    def start_refit(self, executor: Executor) -> Future[ClientModel] | None:
        """Submit a fit on a snapshot of the sample, if one is due; return its future."""
        if not self.due():
            return None
        self.last_fit = self.clock()
        fut = executor.submit(self.fit_fn, self.sample.snapshot())
        self.refit = fut
        return fut

    def poll(self) -> bool:
        """Swap in a finished refit (and save it); True when a new model arrived."""
        fut = self.refit
        if fut is None or not fut.done():
            return False
        self.refit = None
        try:
            model = fut.result()
        except Exception as exc:  # a failed fit keeps the previous model serving
            log.warning("anomalous-client model refit failed: %r", exc)
            return False
        self.install(model)
        return True

    def refit_now(self) -> bool:
        """Fit synchronously when due (the offline replay)."""
        if not self.due():
            return False
        self.last_fit = self.clock()
        self.install(self.fit_fn(self.sample.snapshot()))
        return True

    def install(self, model: ClientModel) -> None:
        with self._lock:
            self.model = model
            self.fits += 1
        if self.path is not None:
            self.save(self.path)

    def save(self, path: Path) -> None:
        if self.model is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        payload = {
            "format": MODEL_FORMAT,
            "features": self.features,
            "model": self.model,
            "sample": self.sample.snapshot(),
        }
        with tmp.open("wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # atomic: a crash mid-write leaves the previous model

    def load(self, path: Path) -> bool:
        """Resume from a saved model and sample (our own state file); False if unusable."""
        try:
            with path.open("rb") as fh:
                payload = pickle.load(fh)  # only ever our own file, written by save()
        except FileNotFoundError:
            return False
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            log.warning("ignoring unreadable model file %s: %r", path, exc)
            return False
        if (
            payload.get("format") != MODEL_FORMAT
            or tuple(payload.get("features", ())) != self.features
        ):
            log.warning("ignoring model file %s: other format or features", path)
            return False
        self.model = payload["model"]
        for row in payload["sample"][-self.sample.size :]:
            self.sample.add(list(row))
        return True
