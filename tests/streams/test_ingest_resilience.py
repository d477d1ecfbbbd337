"""Ingest carries on when processing a batch raises unexpectedly (not bad input: a bug).

Against the real broker: a batch whose fold raises half-way (state already changed) is
replayed one message at a time from the partition's last commit; a message that fails
on its own is dead-lettered with the exception; every other event is counted exactly
once, in the metrics and in the bucket summaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from apiwatch.models.aggregate import BucketFolder
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.deadletter import DeadLetter
from apiwatch.settings import Settings
from apiwatch.streams.ingest import IngestStage
from apiwatch.streams.kafka import ensure_topics, make_producer, topic_specs
from apiwatch.streams.metrics import Metrics
from tests.kafka_helpers import collect, eventually

pytestmark = pytest.mark.integration

BUCKET_MS = 10_000
PER_BUCKET = 20


def event(ts_ms: int, path: str = "/items") -> bytes:
    return orjson.dumps(
        {
            "timestamp": ts_ms,
            "service": "shop",
            "method": "GET",
            "path": path,
            "route": "/items",
            "status": 200,
            "duration_ms": 40.0,
            "client_ip": "10.0.0.1",
        }
    )


async def produce(settings: Settings, values: list[bytes]) -> None:
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for value in values:
            # One key: one partition, in this order.
            await producer.send(settings.topics.rum, value, key=b"shop")
        await producer.flush()
    finally:
        await producer.stop()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_failing_batch_is_replayed_and_a_failing_message_dead_lettered(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(ingest={"idle_flush_s": 3600, "bucket_s": 10})
    t = settings.topics
    await ensure_topics(settings.kafka, topic_specs(settings))

    # The first fold with events raises after it folded them: the partition's open
    # buckets hold half a batch when the failure is seen.
    fold = BucketFolder.fold
    failed_folds: list[int] = []

    def fold_failing_once(
        self: BucketFolder, partition: int, keys: Any, *a: Any, **kw: Any
    ) -> None:
        fold(self, partition, keys, *a, **kw)
        if len(keys) and not failed_folds:
            failed_folds.append(len(keys))
            raise RuntimeError("injected: fold failed half-way")

    monkeypatch.setattr(BucketFolder, "fold", fold_failing_once)

    start = (int(time.time() * 1000) - 300_000) // BUCKET_MS * BUCKET_MS
    buckets = [start + i * BUCKET_MS for i in range(3)]

    def spread(bucket: int) -> list[bytes]:
        return [event(bucket + i * (BUCKET_MS // PER_BUCKET)) for i in range(PER_BUCKET)]

    metrics = Metrics()
    stage = IngestStage(settings, metrics)
    # A message that fails whenever it is processed, alone or in a batch.
    decode = stage.rum_fast.decode

    def decode_failing_on_poison(values: list[bytes], ctx: dict[str, float]) -> Any:
        if any(b"/poison" in v for v in values):
            raise RuntimeError("injected: cannot process /poison")
        return decode(values, ctx)

    monkeypatch.setattr(stage.rum_fast, "decode", decode_failing_on_poison)

    stop = asyncio.Event()
    await produce(settings, spread(buckets[0]) + spread(buckets[1]))
    task = asyncio.create_task(stage.run(stop))
    try:
        await eventually("first two buckets ingested", lambda: stage.stats.events >= 40, 30)
        assert failed_folds, "the injected fold failure did not happen"
        third = spread(buckets[2])
        # Then the poison in the middle of the third bucket, and an event a minute later
        # whose watermark closes the three buckets.
        await produce(
            settings,
            [*third[:10], event(buckets[2] + 1, "/poison"), *third[10:], event(start + 60_000)],
        )
        await eventually("every valid event ingested", lambda: stage.stats.events >= 61, 30)

        def third_closed(records: list[Any]) -> bool:
            # One series, one partition: its summaries come in bucket order.
            return any(
                BucketSummary.model_validate_json(r.value).start_ms >= buckets[2] for r in records
            )

        records = await collect(settings, t.buckets, third_closed, within_s=30)
        letters = await collect(settings, t.deadletter, lambda r: len(r) >= 1, within_s=30)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)

    assert not task.exception()
    summaries = [BucketSummary.model_validate_json(r.value) for r in records]
    # Each bucket summarised once, each event in it counted once (none twice after the
    # replay, none lost with the dropped half-folded state, the poison in none).
    starts = [s.start_ms for s in summaries]
    assert len(starts) == len(set(starts)), starts
    counted = sorted((s.start_ms, s.count) for s in summaries if s.count)
    assert counted == [(b, PER_BUCKET) for b in buckets]
    assert stage.stats.events == 3 * PER_BUCKET + 1
    assert sample(metrics, "apiwatch_events_in_total", topic=t.rum) == 3 * PER_BUCKET + 1
    assert sample(metrics, "apiwatch_messages_in_total", topic=t.rum) == 3 * PER_BUCKET + 2

    # The poison, alone in the dead letters, with the exception as its reason.
    assert len(letters) == 1
    letter = DeadLetter.model_validate_json(letters[0].value)
    assert "RuntimeError: injected: cannot process /poison" in letter.detail
    assert letter.origin.topic == t.rum

    # The fold failure, and the batch with the poison in it.
    assert sample(metrics, "apiwatch_ingest_batch_failures_total", stage="ingest") == 2
    assert stage.stats.batch_failures == 2
