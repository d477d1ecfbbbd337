"""RUM and synthetic alerts on one endpoint come out linked, through the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.simulation import Scenario
from apiwatch.settings import Settings
from apiwatch.streams.simulate import SimulationRun
from tests.kafka_helpers import Record, WorkerProcess, collect, running_pipeline

pytestmark = pytest.mark.integration

LINKED_SCENARIO = {
    "seed": 5,
    "duration_s": 1200,
    "clients": 300,
    "services": [
        {
            "name": "pay",
            "rate_rps": 20,
            "routes": [{"method": "POST", "route": "/pay", "latency_ms": 80}],
        }
    ],
    "checks": [
        {
            "check_id": "pay-check",
            "name": "Pay",
            "service": "pay",
            "interval_s": 60,
            "steps": [{"name": "pay", "method": "POST", "route": "/pay"}],
        }
    ],
    "incidents": [
        {
            "kind": "error_surge",
            "target": {"service": "pay", "method": "POST", "route": "/pay"},
            "start_s": 600,
            "duration_s": 240,
            "magnitude": 0.3,
        },
        {
            "kind": "synthetic_outage",
            "target": {"check": "pay-check"},
            "start_s": 600,
            "duration_s": 240,
            "magnitude": 1.0,
        },
    ],
}


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    yield from running_pipeline(kafka_bootstrap, tmp_path_factory)


async def test_rum_and_synthetic_alerts_on_one_endpoint_are_one_incident(
    pipeline: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = pipeline
    scenario = Scenario.model_validate(LINKED_SCENARIO)
    run = SimulationRun(settings, scenario, speed=1e6, start_ms=int(time.time() * 1000) - 1_400_000)
    await run.run()

    def linked(recs: list[Record]) -> bool:
        events = [AlertEvent.model_validate_json(r.value) for r in recs]
        return any(e.data.related and len(e.data.sources) == 2 for e in events) and any(
            e.transition == "resolved" for e in events
        )

    records = await collect(settings, settings.topics.alerts, linked, within_s=120)
    events = [AlertEvent.model_validate_json(r.value) for r in records]
    kinds = {e.data.kind.value: e.data.fingerprint for e in events if e.transition == "firing"}
    assert {"error_surge", "synthetic_failure"} <= set(kinds), [e.data.summary for e in events]
    surge, outage = kinds["error_surge"], kinds["synthetic_failure"]
    linked_events = [e for e in events if e.data.related]
    assert linked_events, "no alert names a related alert"
    for e in linked_events:
        other = outage if e.data.fingerprint == surge else surge
        assert e.data.related == [other]
        assert e.data.sources == ["rum", "synthetic"]
    # Linking is by event-time overlap, whatever order the partitions were processed in:
    # the later alert names the earlier one, and the earlier gets an `updated` naming the
    # later only if it was still firing when the later one arrived.
    for e in linked_events:
        if e.transition == "updated":
            assert e.data.status.value == "firing"
    assert worker.alive
