"""RUM and synthetic alerts on one endpoint become one incident."""

from __future__ import annotations

import numpy as np

from apiwatch.models.buckets import rum_series_key
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.linking import IncidentLinker
from apiwatch.models.monitor import SeriesMonitor
from tests.detection.helpers import bucket, noisy_bucket, run


def test_rum_and_synthetic_alerts_on_the_same_endpoint_are_linked() -> None:
    cfg = DetectionConfig()
    rum = SeriesMonitor(cfg, rum_series_key("production", "shop", "GET", "/cart"))
    syn = SeriesMonitor(cfg, "synthetic|production|c")
    linker = IncidentLinker()
    rng = np.random.default_rng(1)
    for i in range(60):
        for e in rum.observe(noisy_bucket(rng, i, 50)):
            linker.link(e)
    for i in range(10):
        for loc in ("fra", "iad"):
            for e in syn.observe(run(i, loc, True)):
                linker.link(e)
    out = []
    for i in range(3):
        for e in rum.observe(bucket(60 + i, 0)):  # the endpoint goes silent
            out += linker.link(e)
    for loc in ("fra", "iad"):
        for e in syn.observe(run(10, loc, False)):
            out += linker.link(e)
    by_fp = {}
    for e in out:
        by_fp[e.alert.fingerprint] = e.alert
    assert len(by_fp) == 2
    for alert in by_fp.values():
        assert alert.sources == ["rum", "synthetic"]
        assert alert.related == [fp for fp in by_fp if fp != alert.fingerprint]


def test_linker_state_round_trips() -> None:
    linker = IncidentLinker()
    assert IncidentLinker.from_state(linker.to_state()).active == {}
