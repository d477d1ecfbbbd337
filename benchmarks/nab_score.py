"""NAB scoring, implemented from the rules in ../shared/benchmarks/nab/README.md.

A detector gives every row of every file a score in [0, 1]. For a threshold,
rows at or above it are detections; each labelled window earns the scaled
sigmoid of its earliest detection (or costs ``A_FN`` when it has none), and
each detection outside windows costs ``A_FP`` scaled by how far past the
previous window it lies. NAB picks, per detector and profile, the threshold
that maximises the raw score over all files together, and normalises against
the null detector (never fires) and the perfect one.

>>> f = FileLabels(n_rows=100, windows=[(40, 49)])
>>> s = np.zeros(100); s[41] = 1.0
>>> round(normalised_score([f], [s], STANDARD), 2)
99.56
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
PROFILES = (STANDARD, LOW_FP, LOW_FN)


@dataclass(frozen=True)
class FileLabels:
    """Row count and inclusive ``(start_row, end_row)`` windows of one file."""

    n_rows: int
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * self.n_rows), 750)


def _sigmoid(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def load_labels(root: Path) -> dict[str, tuple[list[str], FileLabels]]:
    """Per relative file name: its timestamps (as text) and its labels as row ranges."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out: dict[str, tuple[list[str], FileLabels]] = {}
    for rel, spans in sorted(windows.items()):
        lines = (root / "data" / rel).read_text().splitlines()[1:]
        stamps = [line.split(",", 1)[0] for line in lines]
        first_row: dict[str, int] = {}
        last_row: dict[str, int] = {}
        for i, ts in enumerate(stamps):
            first_row.setdefault(ts, i)
            last_row[ts] = i
        rows = [(first_row[s[:19]], last_row[e[:19]]) for s, e in spans]
        out[rel] = (stamps, FileLabels(len(stamps), rows))
    return out


def _row_costs(
    labels: FileLabels, profile: Profile
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row: the term a detection there adds, and its window index (-1 outside windows).

    Inside a window the term is the TP credit of a detection at that row (only
    the earliest one counts, which the callers handle); outside, the FP cost.
    """
    n = labels.n_rows
    cost = np.empty(n)
    window_of = np.full(n, -1, dtype=np.int64)
    norm = _sigmoid(-1.0)
    prev: tuple[int, int] | None = None
    spans = sorted(labels.windows)
    k = 0
    for i in range(n):
        while k < len(spans) and spans[k][1] < i:
            prev = spans[k]
            k += 1
        if k < len(spans) and spans[k][0] <= i:
            s, e = spans[k]
            window_of[i] = labels.windows.index(spans[k])
            cost[i] = profile.tp * _sigmoid(-(e - i + 1) / (e - s + 1)) / norm
        elif prev is not None:
            s, e = prev
            q = (i - e) / (e - s)
            cost[i] = profile.fp * (-1.0 if q > 3 else _sigmoid(q))
        else:
            cost[i] = -profile.fp
    return cost, window_of


def _events(
    labels: FileLabels, scores: npt.NDArray[np.float64], profile: Profile
) -> tuple[list[float], list[float]]:
    """Threshold values at which the file's raw score changes, and by how much.

    Lowering the threshold to ``v`` adds every out-of-window row scoring ``v``,
    and moves a window's earliest detection to the first row whose score
    reaches ``v`` (the rows where the running maximum inside the window rises).
    """
    cost, window_of = _row_costs(labels, profile)
    start = labels.probation
    at: list[float] = []
    delta: list[float] = []
    outside = np.flatnonzero(window_of[start:] < 0) + start
    at.extend(scores[outside].tolist())
    delta.extend(cost[outside].tolist())
    for k in range(len(labels.windows)):
        rows = np.flatnonzero(window_of == k)
        rows = rows[rows >= start]
        records: list[tuple[float, float]] = []  # (running max value, credit at that row)
        for i in rows.tolist():
            if not records or scores[i] > records[-1][0]:
                records.append((float(scores[i]), float(cost[i])))
        previous = -profile.fn
        for value, credit in reversed(records):
            at.append(value)
            delta.append(credit - previous)
            previous = credit
    return at, delta


def _curve(
    files: Sequence[FileLabels],
    scores: Sequence[npt.NDArray[np.float64]],
    profile: Profile,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distinct thresholds (descending) and the raw score at each; first entry is +inf."""
    at: list[float] = []
    delta: list[float] = []
    for f, s in zip(files, scores, strict=True):
        a, d = _events(f, np.asarray(s, dtype=float), profile)
        at.extend(a)
        delta.extend(d)
    base = -profile.fn * sum(len(f.windows) for f in files)
    if not at:
        return np.array([math.inf]), np.array([base])
    values = np.asarray(at)
    order = np.argsort(-values, kind="stable")
    values = values[order]
    cumulative = np.cumsum(np.asarray(delta)[order])
    last_of_value = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    thresholds = np.r_[math.inf, values[last_of_value]]
    raws = np.r_[base, base + cumulative[last_of_value]]
    return thresholds, raws


def raw_score(
    files: Sequence[FileLabels],
    scores: Sequence[npt.NDArray[np.float64]],
    threshold: float,
    profile: Profile,
) -> float:
    thresholds, raws = _curve(files, scores, profile)
    reached = np.flatnonzero(thresholds >= threshold)
    return float(raws[reached[-1]])


def best_threshold(
    files: Sequence[FileLabels],
    scores: Sequence[npt.NDArray[np.float64]],
    profile: Profile,
) -> tuple[float, float]:
    """(threshold, raw score) maximising the raw score; ties go to the higher threshold."""
    thresholds, raws = _curve(files, scores, profile)
    best = int(np.argmax(raws))  # first maximum in descending order = highest threshold
    return float(thresholds[best]), float(raws[best])


def normalised_score(
    files: Sequence[FileLabels],
    scores: Sequence[npt.NDArray[np.float64]],
    profile: Profile,
    threshold: float | None = None,
) -> float:
    """NAB's 0..100 score; the threshold is optimised unless given."""
    raw = (
        best_threshold(files, scores, profile)[1]
        if threshold is None
        else raw_score(files, scores, threshold, profile)
    )
    n_windows = sum(len(f.windows) for f in files)
    perfect = profile.tp * n_windows
    null = -profile.fn * n_windows
    return 100.0 * (raw - null) / (perfect - null)
