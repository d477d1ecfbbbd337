"""How soon the stream's per-series monitor catches a latency step or an error surge, by volume.

Run: ``.venv/bin/python benchmarks/monitor_recall.py [--runs 40]``.

Each run feeds one RUM series 120 ten-second buckets of steady traffic (Poisson
request counts, log-normal latency with sigma 0.5, as in
``benchmarks/monitor_noise.py``) through
:class:`~apiwatch.models.monitor.SeriesMonitor` at default settings, then
multiplies every latency by ``fold`` for up to 30 buckets. Printed per request
rate and fold: runs whose latency alert fired within those 30 buckets, and the
median and slowest time to fire, in buckets. Then error surges the same way:
360 buckets (an hour) at a 5xx rate, then 48 buckets (8 minutes) with more.
The false-alert side of the same settings is ``monitor_noise.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apiwatch.models.alerts import AlertKind
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.monitor import SeriesMonitor
from tests.detection.helpers import SERIES, noisy_bucket

RATES = (3, 5, 8, 18, 60, 200)  # requests per 10 s bucket
FOLDS = (2.0, 3.0, 5.0)
WARM, SPIKE = 120, 30
#: (requests per bucket, usual 5xx share, added share)
SURGES = ((10, 0.01, 0.05), (10, 0.0, 0.05), (10, 0.02, 0.10), (20, 0.01, 0.05), (50, 0.01, 0.05))
SURGE_WARM, SURGE = 360, 48


def buckets_to_fire(seed: int, rate: float, fold: float) -> int | None:
    rng = np.random.default_rng(seed + 99)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    for i in range(WARM):
        monitor.observe(noisy_bucket(rng, i, rate, 0.0))
    for j in range(SPIKE):
        for e in monitor.observe(noisy_bucket(rng, WARM + j, rate, 0.0, ms=100 * fold)):
            if e.transition == "firing" and e.alert.kind is AlertKind.LATENCY_SPIKE:
                return j + 1
    return None


def buckets_to_surge(seed: int, rate: float, usual: float, added: float) -> int | None:
    rng = np.random.default_rng(seed + 7)
    monitor = SeriesMonitor(DetectionConfig(), SERIES)
    for i in range(SURGE_WARM):
        monitor.observe(noisy_bucket(rng, i, rate, usual))
    for j in range(SURGE):
        for e in monitor.observe(noisy_bucket(rng, SURGE_WARM + j, rate, usual + added)):
            if e.transition == "firing" and e.alert.kind is AlertKind.ERROR_SURGE:
                return j + 1
    return None


def line(what: str, times: list[int | None]) -> str:
    caught = sorted(t for t in times if t is not None)
    timing = (
        f"median {float(np.median(caught)):4.1f}, slowest {caught[-1]:2d} buckets"
        if caught
        else "never"
    )
    return f"  {what}: caught {len(caught):3d}/{len(times)}, {timing}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per rate and fold")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(f"{args.runs} runs per case; latency x fold from bucket {WARM}, up to {SPIKE} buckets")
    for rate in RATES:
        for fold in FOLDS:
            times = [buckets_to_fire(seed, rate, fold) for seed in range(args.runs)]
            print(line(f"{rate:4d} req/bucket, latency x{fold:.0f}", times))
    print(f"error surges from bucket {SURGE_WARM}, up to {SURGE} buckets")
    for rate, usual, added in SURGES:
        times = [buckets_to_surge(seed, rate, usual, added) for seed in range(args.runs)]
        print(line(f"{rate:4d} req/bucket, 5xx {usual:.0%} -> {usual + added:.0%}", times))


if __name__ == "__main__":
    main()
