"""End to end through a real broker: a worker process, injected spikes, bad input."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.deadletter import DeadLetter
from apiwatch.models.simulation import Scenario, malformed_messages
from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_producer
from apiwatch.streams.simulate import SimulationRun
from tests.kafka_helpers import Record, WorkerProcess, collect, running_pipeline

pytestmark = pytest.mark.integration

SPIKE_SCENARIO = {
    "seed": 3,
    "duration_s": 1200,
    "clients": 200,
    "services": [
        {
            "name": "catalog",
            "rate_rps": 25,
            "routes": [
                {"method": "GET", "route": "/items/{id}", "weight": 3, "latency_ms": 50},
                {"method": "GET", "route": "/items", "weight": 1, "latency_ms": 120},
            ],
        }
    ],
    "incidents": [
        {
            "kind": "latency_spike",
            "target": {"service": "catalog", "method": "GET", "route": "/items/{id}"},
            "start_s": 600,
            "duration_s": 150,
            "magnitude": 5,
        }
    ],
}


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    yield from running_pipeline(kafka_bootstrap, tmp_path_factory)


async def test_latency_spike_fires_once_and_resolves_once(
    pipeline: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = pipeline
    scenario = Scenario.model_validate(SPIKE_SCENARIO)
    start = int(time.time() * 1000) - 1_500_000
    run = SimulationRun(settings, scenario, speed=1e6, start_ms=start)
    await run.run()
    truth = run.truth()[0]

    def finished(recs: list[Record]) -> bool:
        types = [AlertEvent.model_validate_json(r.value).transition for r in recs]
        return "resolved" in types

    records = await collect(settings, settings.topics.alerts, finished, within_s=120)
    alerts = [AlertEvent.model_validate_json(r.value) for r in records]
    assert alerts, f"no alerts at all:\n{worker.log_tail()}"
    spikes = [a for a in alerts if a.data.labels.get("route") == "/items/{id}"]
    assert [a.transition for a in spikes] == ["firing", "resolved"], [
        a.data.summary for a in alerts
    ]
    firing, resolved = spikes
    assert firing.subject == resolved.subject == firing.data.fingerprint
    assert all(
        r.key == firing.data.fingerprint.encode() for r in records if r.value == records[0].value
    )
    fired_ms = firing.time.timestamp() * 1000
    assert truth.start_ms <= fired_ms <= truth.end_ms
    assert firing.data.observed is not None and firing.data.expected is not None
    assert firing.data.observed.value > firing.data.expected.upper
    assert firing.data.evidence.sample_event_ids
    assert resolved.time.timestamp() * 1000 >= truth.end_ms
    # the untouched route stays quiet
    assert not [a for a in alerts if a.data.labels.get("route") == "/items"]


async def test_bad_input_is_dead_lettered_and_good_input_still_flows(
    pipeline: tuple[Settings, WorkerProcess], tmp_path: Path
) -> None:
    settings, worker = pipeline
    t = settings.topics
    now = int(time.time() * 1000)
    # Newer than anything the other test produced, so no partition sees these as late.
    base = now - 40_000
    bad = malformed_messages(now)
    good = {
        "service": "dlq-check",
        "method": "GET",
        "path": "/ok/1",
        "status": 200,
        "duration_ms": 12.5,
        "client_ip": "10.0.0.9",
    }
    producer = make_producer(settings.kafka)
    await producer.start()
    sent_bad: list[tuple[str, bytes, int, int]] = []
    n_good = 0
    try:
        for i, (reason, payload) in enumerate(bad):
            md = await (
                await producer.send(
                    t.rum, orjson.dumps({**good, "timestamp": base + i * 100}), key=b"dlq-check"
                )
            )
            n_good += 1
            md = await (await producer.send(t.rum, payload, key=b"dlq-check"))
            sent_bad.append((reason, payload, md.partition, md.offset))
        bad_synthetic = orjson.dumps({"check_id": "c1", "steps": "nope"})
        md = await (await producer.send(t.synthetic, bad_synthetic, key=b"c1"))
        sent_bad.append(("invalid_event", bad_synthetic, md.partition, md.offset))
        # One later event pushes the partition's watermark past the first bucket.
        await producer.send_and_wait(
            t.rum, orjson.dumps({**good, "timestamp": base + 35_000}), key=b"dlq-check"
        )
    finally:
        await producer.stop()

    records = await collect(settings, t.deadletter, lambda r: len(r) >= len(sent_bad), within_s=60)
    letters = [DeadLetter.model_validate_json(r.value) for r in records]
    by_origin = {(dl.origin.topic, dl.origin.partition, dl.origin.offset): dl for dl in letters}
    for reason, payload, partition, offset in sent_bad:
        topic = t.synthetic if payload.startswith(b'{"check_id"') else t.rum
        dl = by_origin.get((topic, partition, offset))
        assert dl is not None, f"no dead letter for {reason} at {topic}[{partition}]@{offset}"
        assert dl.reason.value == reason
        assert dl.detail
        assert base64.b64decode(dl.payload_b64) == payload

    def has_bucket(recs: list[Record]) -> bool:
        return any(b"dlq-check" in r.key for r in recs)

    buckets = await collect(settings, t.buckets, has_bucket, within_s=60)
    summaries = [
        BucketSummary.model_validate_json(r.value) for r in buckets if b"dlq-check" in r.key
    ]
    counted = sum(s.count for s in summaries if s.start_ms < base + 20_000)
    assert counted == n_good
    assert sum(s.late for s in summaries) == 0
    assert worker.alive
    health = worker.health()
    assert health is not None and health["ok"], health
