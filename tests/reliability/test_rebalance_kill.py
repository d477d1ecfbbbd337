"""A worker killed with SIGKILL while a rebalance is in progress, then restarted, loses nothing.

Worker A runs alone; worker B starts and joins (its JoinGroup puts the ingest
group into a rebalance) while the rest of the input flows in; A is killed as soon
as it is told the group is rebalancing, before B's assignment completes; A then
restarts with the same state dir. Compared with the uninterrupted reference: the
same alerts (duplicates only with the same idempotency key), the same buckets
judged per series with the same counts, the same final monitor states.
"""

from __future__ import annotations

import pytest

from tests.reliability.harness import RunResult
from tests.reliability.test_restart import assert_same_as_reference

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_kill_during_rebalance_loses_nothing_and_counts_nothing_twice(
    runs: dict[str, RunResult],
) -> None:
    ref, got = runs["reference"], runs["rebalance-KILL"]
    # The kill landed inside the rebalance: B had no ingest assignment yet.
    assert got.notes["b_assigned_at_kill"] is None, got.notes
    assert got.notes["b_first_assigned_after_kill"], got.notes
    assert got.notes["a_exit"] == -9, got.notes
    assert got.notes["fed_before_kill"] > 0, got.notes  # A was under load
    assert_same_as_reference(ref, got)
    # No warm-up again, no storm: every alert at the reference's event time and id.
    assert {(a.id, a.time) for a in got.detected} == {(a.id, a.time) for a in ref.detected}
