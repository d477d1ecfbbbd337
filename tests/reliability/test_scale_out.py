"""Two workers with one app id share the partitions; one leaves, the other carries on.

Their combined output equals a single worker's on the same input (alerts, buckets
judged, final monitor state), and the survivor, which takes over the leaver's
partitions and their state from the changelog, catches the later incidents as the
single worker did: no warm-up, no alert storm.
"""

from __future__ import annotations

import pytest

from tests.reliability.harness import RunResult
from tests.reliability.test_restart import assert_same_as_reference

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_two_workers_share_the_work_and_hand_over_without_loss(
    runs: dict[str, RunResult],
) -> None:
    ref, got = runs["reference"], runs["scale-out"]
    a, b = got.notes["assigned"]
    assert a and b and not set(a) & set(b), (a, b)
    # The latency spike fired and resolved while both workers shared the partitions.
    assert got.notes["alerts_while_shared"] >= 2
    assert got.notes["b_exit"] == 0
    assert_same_as_reference(ref, got)
