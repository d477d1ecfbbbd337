"""The long-running schedule: every check on its interval, spread by jitter, results published.

Each check keeps a fixed grid (``interval_s`` apart) so runs do not drift
later and later; every run starts at its grid point plus a random delay up to
``jitter_s``, which spreads many checks (and many runner locations) over the
interval instead of firing them all at once. A semaphore bounds how many
checks run at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from apiwatch.models.checks.definition import CheckDefinition
from apiwatch.streams.checks.publisher import ResultPublisher
from apiwatch.streams.checks.runner import CheckRunner

log = logging.getLogger(__name__)


def next_start(
    grid: float, interval_s: float, jitter_s: float, now: float, rng: random.Random
) -> tuple[float, float]:
    """The next grid point after ``now`` and the jittered start time for it.

    >>> next_start(100.0, 60.0, 0.0, now=250.0, rng=random.Random(1))
    (280.0, 280.0)
    """
    while grid <= now:
        grid += interval_s
    return grid, grid + rng.uniform(0.0, jitter_s)


async def run_schedule(
    checks: Sequence[CheckDefinition],
    runner: CheckRunner,
    publisher: ResultPublisher,
    stop: asyncio.Event,
    max_concurrency: int = 16,
    rng: random.Random | None = None,
) -> None:
    """Run every enabled check on its schedule until ``stop`` is set."""
    rng = rng or random.Random()
    gate = asyncio.Semaphore(max_concurrency)
    enabled = [c for c in checks if c.enabled]
    log.info("running %d checks from %s", len(enabled), runner.location)
    async with asyncio.TaskGroup() as group:
        group.create_task(publisher.run(stop))
        for check in enabled:
            group.create_task(_loop(check, runner, publisher, stop, gate, rng))


async def _loop(
    check: CheckDefinition,
    runner: CheckRunner,
    publisher: ResultPublisher,
    stop: asyncio.Event,
    gate: asyncio.Semaphore,
    rng: random.Random,
) -> None:
    loop = asyncio.get_running_loop()
    # First runs spread over the first few seconds, so a start does not fire
    # every check in the same instant.
    grid = loop.time() - check.interval_s + rng.uniform(0.0, min(check.interval_s, 10.0))
    while not stop.is_set():
        grid, start = next_start(grid, check.interval_s, check.jitter_s, loop.time(), rng)
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, start - loop.time()))
            return
        except TimeoutError:
            pass
        try:
            async with gate:
                run = await runner.run(check)
        except Exception:
            # A bug in one check's run must not stop the others' schedules.
            log.exception("check %s crashed the runner; next run as scheduled", check.id)
            continue
        publisher.submit(check.id, run.to_json())
