"""The anomalous-client model: background refits never hold up processing; save and load."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from apiwatch.models.access.config import AccessConfig, ModelConfig
from apiwatch.models.access.engine import AccessEngine, DictStore
from apiwatch.models.access.features import FEATURES
from apiwatch.models.access.model import ClientModel, Matrix, ModelKeeper, fit
from apiwatch.models.access.records import ClientBatch, ClientWindow, RouteSlice

CFG = ModelConfig(min_fit_rows=50, sample_size=500, refit_interval_s=0.001, min_requests=5)


def _batch(window: int, clients: int = 60) -> ClientBatch:
    recs = []
    for c in range(clients):
        n = 10 + c % 5
        recs.append(
            ClientWindow(
                client=f"production|ip|10.0.{c // 250}.{c % 250}",
                start_ms=window * 10_000,
                end_ms=(window + 1) * 10_000,
                first_ms=window * 10_000,
                last_ms=window * 10_000 + 9_000,
                count=n,
                routes={"shop GET /products/{id}": RouteSlice(count=n, ids=["1", "2"], paths=2)},
            )
        )
    return ClientBatch(records=recs)


def test_batches_keep_flowing_while_a_refit_runs() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_fit(rows: Matrix) -> ClientModel:
        started.set()
        release.wait(timeout=60)
        return fit(rows, FEATURES, n_estimators=20, max_samples=64)

    keeper = ModelKeeper(CFG, FEATURES, fit_fn=slow_fit)
    engine = AccessEngine(AccessConfig(model=CFG), keeper)
    store = DictStore()
    with ThreadPoolExecutor(1) as pool:
        engine.process(_batch(0), store)
        assert keeper.start_refit(pool) is not None
        assert started.wait(timeout=30)
        before = engine.records
        for w in range(1, 6):  # the fit is blocked: processing must not be
            engine.process(_batch(w), store)
        assert engine.records == before + 5 * 60
        assert keeper.model is None and not keeper.poll()
        assert keeper.start_refit(pool) is None  # one refit at a time
        release.set()
        assert keeper.refit is not None
        keeper.refit.result(timeout=30)
        assert keeper.poll() and keeper.model is not None
    engine.process(_batch(6), store)
    assert engine.scored == 60


def test_a_saved_model_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    keeper = ModelKeeper(CFG, FEATURES, path=path)
    rng = np.random.default_rng(1)
    for row in rng.normal(0, 1, (100, len(FEATURES))):
        keeper.sample.add(list(row))
    assert keeper.refit_now() and path.exists()
    again = ModelKeeper(CFG, FEATURES, path=path)
    assert again.load(path)
    assert again.model is not None and again.sample.filled == 100
    probe = rng.normal(0, 1, (5, len(FEATURES)))
    assert keeper.model is not None
    np.testing.assert_allclose(again.model.score(probe), keeper.model.score(probe))
    assert not ModelKeeper(CFG, ("other",), path=path).load(path)


def test_the_model_names_the_features_of_a_client_unlike_the_others() -> None:
    cfg = AccessConfig(model=CFG)
    keeper = ModelKeeper(cfg.model, FEATURES)
    engine = AccessEngine(cfg, keeper)
    store = DictStore()
    for w in range(20):
        engine.process(_batch(w), store)
    assert keeper.refit_now()
    odd = ClientWindow(
        client="production|ip|192.0.2.200",
        start_ms=200_000,
        end_ms=210_000,
        first_ms=200_000,
        last_ms=209_000,
        count=400,
        errors_4xx=390,
        not_found=390,
        routes={"shop GET /products/{id}": RouteSlice(count=400, denied=390, paths=64)},
    )
    done = engine.process(ClientBatch(records=[odd]), store)
    (em,) = [e for e in done.emissions if e.alert.kind.value == "anomalous_client"]
    assert em.alert.severity.value == "info"
    named = [f["feature"] for f in em.alert.evidence.details["features"]]
    assert {"not_found_share", "denied_share", "client_error_share"} & set(named)


def test_a_client_at_the_top_of_the_samples_range_is_not_unusual() -> None:
    # Lumpy like real traffic: most clients call one or two routes, one in 500 calls
    # every route of the API (8). Reaching what the sample's busiest clients reach is
    # ordinary; only going beyond it, far enough, is "unlike other clients".
    rng = np.random.default_rng(1)
    routes = np.where(np.arange(5000) % 500 == 0, np.log1p(8.0), np.log1p(rng.integers(1, 3, 5000)))
    other = rng.normal(0.0, 0.01, (5000, 2))
    model = fit(np.column_stack([routes, other]), ("distinct_routes", "a", "b"), seed=0)
    top, beyond = [np.log1p(8.0), 0.0, 0.0], [np.log1p(40.0), 0.0, 0.0]
    verdicts = model.judge(np.array([top, beyond]), min_z=6.0)
    assert verdicts[0] is None
    assert verdicts[1] is not None and verdicts[1][0][0] == "distinct_routes"
