"""A worker stopped mid-stream (SIGTERM, SIGKILL) and restarted loses nothing.

Compared with the uninterrupted reference run on the same input: the same alert
events (duplicates allowed only with the same idempotency key), the same buckets
judged per series with the same event counts, and the same final SeriesMonitor
state in the changelog: no bucket lost or counted twice into a baseline, no
warm-up again (the incidents after the restart are caught exactly as in the
reference) and no alert storm.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.reliability.harness import RESTART_SPLIT_S, RunResult, scenario_input

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON-like values first differ, as a path and the two values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {str(a)[:300]} != {str(b)[:300]}"


def state_diff(ref: RunResult, got: RunResult) -> list[str]:
    return [
        f"{key}{first_difference(ref.states.get(key), got.states.get(key))}"
        for key in sorted(set(ref.states) | set(got.states))
        if ref.states.get(key) != got.states.get(key)
    ]


def assert_same_as_reference(ref: RunResult, got: RunResult) -> None:
    # (i) alerts as detection emitted them: the same (fingerprint, transition) pairs
    # and the same event ids (idempotency keys); a duplicate repeats an id.
    assert got.pairs == ref.pairs, (sorted(ref.pairs - got.pairs), sorted(got.pairs - ref.pairs))
    assert got.alert_ids == ref.alert_ids
    for alerts in (got.detected, got.alerts):
        per_id: dict[str, set[tuple[str, str, Any]]] = {}
        for a in alerts:
            per_id.setdefault(a.id, set()).add((a.data.fingerprint, a.transition, a.time))
        assert all(len(v) == 1 for v in per_id.values()), "one id, different alerts"
    # Every detected alert was published, under its own id (nothing lost in linking).
    assert {a.id for a in got.alerts} >= got.alert_ids
    # (ii) per series, the buckets detection accepted, with their event counts.
    assert got.judged == ref.judged, sorted(
        s for s in set(got.judged) | set(ref.judged) if got.judged.get(s) != ref.judged.get(s)
    )
    # ... and the final monitor state (baselines, lifecycles, buckets seen) in the changelog.
    assert got.states == ref.states, "\n".join(state_diff(ref, got))


def test_reference_run_catches_every_incident_once(runs: dict[str, RunResult]) -> None:
    ref = runs["reference"]
    kinds = Counter((a.data.kind.value, a.transition) for a in ref.detected)
    assert kinds[("latency_spike", "firing")] == 1, kinds
    assert kinds[("latency_spike", "resolved")] == 1, kinds
    assert kinds[("error_surge", "firing")] == 1, kinds
    assert kinds[("synthetic_failure", "firing")] == 1, kinds
    assert ref.duplicates == 0
    assert ref.events_judged > 30_000
    # Nothing before the incidents: the baselines stayed quiet.
    first = min(t.start_ms for t in scenario_input().truth)
    assert all(a.time.timestamp() * 1000 >= first for a in ref.detected)


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_restart_loses_nothing_and_counts_nothing_twice(
    runs: dict[str, RunResult], sig: str
) -> None:
    ref, got = runs["reference"], runs[sig]
    assert_same_as_reference(ref, got)
    if sig == "TERM":
        assert got.notes["exit_code"] == 0, got.notes["first_log"]
    # No warm-up again: every alert fires after the restart point, exactly when the
    # reference's did, and there is no extra one (no storm).
    split_ms = scenario_input().start_ms + RESTART_SPLIT_S * 1000
    assert all(a.time.timestamp() * 1000 > split_ms for a in got.detected)
    assert {(a.id, a.time) for a in got.detected} == {(a.id, a.time) for a in ref.detected}
