"""The broker epoch claimed before the stages start, and the repair of phantom partitions.

A producer that had writes buffered while the embedded broker restarted re-sends them with
the metadata it cached: Tansu acknowledges them although it has no such topic, and the
topic created later under that name reports an end offset no fetch reaches (Faust's
changelog recovery waited for ever on it). The worker that creates the epoch marker
finds such topics and creates them again; workers starting with it wait for its epoch.

Each test owns its broker (it restarts it, or needs a state no other test touched).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from apiwatch.settings import Settings, load_settings
from apiwatch.streams.broker import EmbeddedBroker
from apiwatch.streams.broker_watch import READY, BrokerWatch
from apiwatch.streams.kafka import make_consumer, make_producer, topic_specs
from apiwatch.streams.metrics import Health, Metrics

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker()
    b.start()
    try:
        yield b
    finally:
        b.stop()


def settings_on(broker: EmbeddedBroker) -> Settings:
    u = f"w{uuid.uuid4().hex[:6]}"
    return load_settings(
        overrides={
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "topics": {"rum": f"{u}.rum", "buckets": f"{u}.buckets", "partitions": 2},
            "app": {"app_id": u},
        }
    )


def watch(settings: Settings, metrics: Metrics | None = None) -> BrokerWatch:
    return BrokerWatch(
        settings,
        settings.kafka.bootstrap_servers,
        topic_specs(settings),
        metrics or Metrics(),
        Health(),
        epoch_wait_s=30,
    )


async def ends_and_reads(settings: Settings, topic: str, n: int) -> list[tuple[int, int]]:
    """Per partition: (end offset reported, records a fetch from the start returns)."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(n)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = dict.fromkeys(tps, 0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                got[tp] += len(records)
            done = [
                (hw := consumer.highwater(tp)) is not None and await consumer.position(tp) >= hw
                for tp in tps
            ]
            if all(done):
                break
        return [(ends[tp], got[tp]) for tp in tps]
    finally:
        await consumer.stop()


def recreated(metrics: Metrics, topic: str) -> float:
    sample = "apiwatch_topics_recreated_total"
    return metrics.registry.get_sample_value(sample, {"topic": topic}) or 0.0


async def test_a_topic_written_to_before_it_existed_is_created_again(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_on(broker)
    changelog = NewTopic(
        f"{settings.app.app_id}-monitors-changelog",
        2,
        1,
        topic_configs={"cleanup.policy": "compact"},
    )
    specs = [*topic_specs(settings), changelog]
    first = watch(settings)
    await first.claim(specs)
    # A client of the broker's first life, with its metadata cached: writes buffered
    # while the broker is away reach the new, empty one.
    producer = make_producer(settings.kafka, linger_ms=0)
    await producer.start()
    try:
        for i in range(4):
            await producer.send_and_wait(changelog.name, b"old", key=b"k%d" % i, partition=i % 2)
        broker.stop()
        sent = [
            await producer.send(changelog.name, b"buffered", key=b"k%d" % i, partition=i % 2)
            for i in range(6)
        ]
        broker.start()
        # Tansu acknowledges them, with no topic to hold them.
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    restarted = watch(settings, metrics := Metrics())
    epoch = await restarted.claim(specs)
    assert epoch and epoch != first.epoch
    # The changelog is there, empty, and what it reports is what a fetch reads.
    assert await ends_and_reads(settings, changelog.name, 2) == [(0, 0), (0, 0)]
    assert recreated(metrics, changelog.name) == 1
    # And it takes writes again.
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        md = await producer.send_and_wait(changelog.name, b"new", key=b"k", partition=0)
    finally:
        await producer.stop()
    assert md.offset == 0
    # A second claim on the same broker state reads the epoch and replaces nothing.
    again = watch(settings, metrics)
    assert await again.claim(specs) == epoch
    assert recreated(metrics, changelog.name) == 1


async def test_workers_starting_together_share_one_epoch_and_one_check(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_on(broker)
    specs = topic_specs(settings)
    caplog.set_level("INFO", logger="apiwatch.streams.broker_watch")
    watches = [watch(settings) for _ in range(3)]
    epochs = await asyncio.gather(*(w.claim(specs) for w in watches))
    assert len(set(epochs)) == 1 and epochs[0]
    checked = [r for r in caplog.records if "checks the topics before" in r.getMessage()]
    assert len(checked) == 1, [r.getMessage() for r in caplog.records]
    waited = [r for r in caplog.records if "is not ready yet" in r.getMessage()]
    assert len(waited) <= 2
    # The marker starts with the epoch (the other candidates' records follow it), and
    # says once that its topics were checked.
    marker = await watches[0].read_marker()
    assert marker[0] == epochs[0].encode() and marker.count(READY) == 1


async def test_a_topic_with_records_is_never_replaced_for_its_partition_count(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_on(broker)
    t = settings.topics
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t.rum, 3, 1), NewTopic(t.buckets, 1, 1)])
    finally:
        await admin.close()
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(t.rum, b"{}", partition=2)
    finally:
        await producer.stop()
    metrics = Metrics()
    await watch(settings, metrics).claim(topic_specs(settings))
    reads = await ends_and_reads(settings, t.rum, 3)
    assert [n for _, n in reads] == [0, 0, 1]  # kept, with its record
    # The empty one with the wrong count is made again as configured.
    assert recreated(metrics, t.buckets) == 1
    assert recreated(metrics, t.rum) == 0
    assert await ends_and_reads(settings, t.buckets, t.partitions) == [(0, 0)] * t.partitions
