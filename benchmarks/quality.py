"""Detection quality: NAB scores of ``apiwatch backtest``, and simulator scenarios.

Run: ``.venv/bin/python benchmarks/quality.py [--nab DIR] [--skip-sim]``.

NAB part: every file of the NAB subset in ``../shared/benchmarks/nab`` goes
through :func:`apiwatch.models.backtest.backtest_series` (what ``apiwatch
backtest SERIES.csv`` runs) at default settings, and is scored with the NAB
rules (``benchmarks/nab_score.py``): once on the continuous ``anomaly_score``
with NAB's optimised threshold, once on the 0/1 ``alert`` column. The
published scores of other detectors on the same files are printed beside them.

Simulator part: see :mod:`benchmarks.sim_quality`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab_score import PROFILES, FileLabels, best_threshold, load_labels, normalised_score

from apiwatch.models.backtest import backtest_series, parse_timestamp

DEFAULT_NAB = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nab"

#: Published per-profile scores on these 28 files (README of the NAB folder).
PUBLISHED = {
    "numenta (HTM)": (72.30, 69.12, 75.98),
    "contextOSE (CAD OSE)": (71.61, 67.25, 75.52),
    "htmjava": (69.82, 64.13, 73.48),
    "ARTime": (69.81, 59.97, 75.24),
    "knncad": (57.05, 46.57, 62.11),
    "randomCutForest": (53.71, 44.87, 60.09),
    "relativeEntropy": (50.06, 42.87, 53.74),
    "skyline (Etsy)": (46.22, 35.19, 52.11),
    "twitterADVec": (41.18, 23.48, 49.68),
    "ewma-zscore": (37.07, 15.68, 47.86),
    "windowedGaussian": (26.52, 2.24, 37.12),
    "random": (20.76, 7.74, 29.50),
    "null": (0.0, 0.0, 0.0),
}


def nab_report(root: Path, every: int = 1) -> None:
    """NAB scores; ``every > 1`` first averages each run of that many rows into one.

    Averaging turns the 5-minute files into, say, hourly ones (``every=12``)
    with their windows mapped onto the new rows, a check that the detector
    infers the interval and does not lean on 5 minutes. The published scores
    are for the original files only, so they are not printed then.
    """
    labels = load_labels(root)
    files: list[FileLabels] = []
    scores: list[np.ndarray] = []
    alerts: list[np.ndarray] = []
    started = time.perf_counter()
    rows = 0
    for rel, (stamps, file_labels) in labels.items():
        values = np.loadtxt(root / "data" / rel, delimiter=",", skiprows=1, usecols=1, ndmin=1)
        times = np.array([parse_timestamp(s) for s in stamps])
        if every > 1:
            m = len(values) // every
            values = values[: m * every].reshape(m, every).mean(axis=1)
            times = times[: m * every : every]
            file_labels = FileLabels(
                m, [(s // every, min(e // every, m - 1)) for s, e in file_labels.windows]
            )
        result = backtest_series(times.tolist(), values.tolist())
        files.append(file_labels)
        scores.append(result.scores)
        alerts.append(result.alerts.astype(float))
        rows += len(values)
    elapsed = time.perf_counter() - started
    print(
        f"NAB subset: {len(files)} files, {rows} rows, "
        f"{sum(len(f.windows) for f in files)} windows; backtest took {elapsed:.1f} s"
    )
    ours_score = tuple(normalised_score(files, scores, p) for p in PROFILES)
    ours_alert = tuple(normalised_score(files, alerts, p) for p in PROFILES)
    threshold = best_threshold(files, scores, PROFILES[0])[0]
    found = sum(
        int(a[s : e + 1].any()) for f, a in zip(files, alerts, strict=True) for s, e in f.windows
    )
    n_alerts = int(sum(a[f.probation :].sum() for f, a in zip(files, alerts, strict=True)))
    print(f"  anomaly_score: optimised standard threshold {threshold:.4f}")
    print(f"  alert: {n_alerts} alerts after probation; windows with an alert {found}")
    print(f"  {'detector':28s} {'standard':>9s} {'low FP':>8s} {'low FN':>8s}")
    table = {
        "apiwatch anomaly_score": ours_score,
        "apiwatch alert (0/1)": ours_alert,
        **(PUBLISHED if every == 1 else {}),
    }
    for name, (std, low_fp, low_fn) in sorted(table.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:28s} {std:9.2f} {low_fp:8.2f} {low_fn:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB subset folder")
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument(
        "--nab-every",
        type=int,
        default=1,
        metavar="K",
        help="average every K rows of the NAB files first (12: hourly series)",
    )
    args = parser.parse_args()
    if args.nab_every < 1:
        parser.error("--nab-every must be at least 1")
    if not args.skip_nab and not (args.nab / "labels" / "combined_windows.json").is_file():
        parser.error(f"no NAB subset at {args.nab} (give its folder with --nab DIR)")
    if not args.skip_nab:
        nab_report(args.nab, args.nab_every)
    if not args.skip_sim:
        from sim_quality import report

        report()


if __name__ == "__main__":
    main()
