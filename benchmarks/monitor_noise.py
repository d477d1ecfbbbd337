"""False alerts of the stream's per-series monitor on stationary traffic, by volume.

Run: ``.venv/bin/python benchmarks/monitor_noise.py [--runs 100] [--buckets 600]``.

Each run feeds one RUM series 10-second buckets of steady traffic (Poisson
request counts, log-normal latency with sigma 0.5, binomial 5xx) through
:class:`~apiwatch.models.monitor.SeriesMonitor` at default settings; every
alert is false. Printed per request rate and error rate: false alerts by kind
and per series-day. Buckets are built as the detection tests build them.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.monitor import SeriesMonitor
from tests.detection.helpers import SERIES, noisy_bucket

#: (requests per 10 s bucket, 5xx share)
CASES = (
    (3, 0.0),
    (8, 0.0),
    (18, 0.0),
    (25, 0.0),
    (60, 0.0),
    (20, 0.05),
    (50, 0.01),
    (86, 0.03),
    (200, 0.05),
    (1000, 0.02),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per case")
    parser.add_argument("--buckets", type=int, default=600, help="10 s buckets per run")
    args = parser.parse_args()
    if args.runs < 1 or args.buckets < 1:
        parser.error("--runs and --buckets must be at least 1")
    days = args.runs * args.buckets * 10 / 86400
    print(f"{args.runs} runs x {args.buckets} buckets per case = {days:.1f} series-days")
    for rate, err in CASES:
        kinds: Counter[str] = Counter()
        for seed in range(args.runs):
            rng = np.random.default_rng(seed + 5000)
            monitor = SeriesMonitor(DetectionConfig(), SERIES)
            for i in range(args.buckets):
                for e in monitor.observe(noisy_bucket(rng, i, rate, err)):
                    if e.transition == "firing":
                        kinds[e.alert.kind.value] += 1
        total = sum(kinds.values())
        print(
            f"  {rate:4d} req/bucket, {err:4.0%} 5xx: {total:3d} false alerts "
            f"({total / days:.2f} per series-day) {dict(kinds)}"
        )


if __name__ == "__main__":
    main()
