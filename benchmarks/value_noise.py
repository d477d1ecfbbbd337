"""False alerts of ``apiwatch backtest SERIES.csv`` on series with nothing to find.

Run: ``.venv/bin/python benchmarks/value_noise.py [--series 6] [--days 7]``.

Four kinds of stationary 5-minute series with a daily cycle (Gaussian noise,
Student-t(3) noise, the Gaussian rounded to integers, and exponential noise
with 2% spikes) go through the CSV backtest at default settings, once as
shipped and once without the sequence (pattern) residual. Every alert after
the first day is false; the figure is alerts per series-day.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apiwatch.models.backtest import backtest_series
from apiwatch.models.detection_config import DetectionConfig, ValueSeriesConfig

ROWS_PER_DAY = 288
KINDS = ("gaussian", "student-t(3)", "rounded", "spiky")


def series(kind: str, days: int, seed: int) -> np.ndarray:
    n = ROWS_PER_DAY * days
    rng = np.random.default_rng(seed)
    daily = 100.0 + 10.0 * np.sin(np.arange(n) * 2 * np.pi / ROWS_PER_DAY)
    if kind == "gaussian":
        return daily + rng.normal(0.0, 2.0, n)
    if kind == "student-t(3)":
        return daily + 2.0 * rng.standard_t(3, n)
    if kind == "rounded":
        return np.round(daily + rng.normal(0.0, 2.0, n))
    spiky = rng.exponential(1.0, n)
    spiky[rng.random(n) < 0.02] += 20.0
    return spiky


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=6, help="series per kind")
    parser.add_argument("--days", type=int, default=7, help="days per series")
    args = parser.parse_args()
    if args.series < 1 or args.days < 2:
        parser.error("need --series >= 1 and --days >= 2")
    print(f"{args.series} series x {args.days - 1} scored days per kind, 5-minute rows")
    print(f"  {'kind':14s} {'as shipped':>12s} {'no pattern':>12s}   (false alerts per series-day)")
    totals = [0, 0]
    for kind in KINDS:
        counts = []
        for k, bins in enumerate((ValueSeriesConfig().pattern_bins, 0)):
            cfg = DetectionConfig(series=ValueSeriesConfig(pattern_bins=bins))
            alerts = 0
            for seed in range(args.series):
                values = series(kind, args.days, seed)
                times = [i * 300_000 for i in range(values.size)]
                alerts += int(
                    backtest_series(times, values.tolist(), cfg).alerts[ROWS_PER_DAY:].sum()
                )
            counts.append(alerts)
            totals[k] += alerts
        days = args.series * (args.days - 1)
        print(f"  {kind:14s} {counts[0] / days:12.3f} {counts[1] / days:12.3f}")
    days = len(KINDS) * args.series * (args.days - 1)
    print(
        f"  {'all':14s} {totals[0] / days:12.3f} {totals[1] / days:12.3f}   over {days} series-days"
    )


if __name__ == "__main__":
    main()
