"""The OTLP bridge stage: Collector spans from Kafka in, RUM events out.

It reads the topic an OpenTelemetry Collector's Kafka exporter writes
(``topics.otlp``) in batches, turns HTTP SERVER spans into RUM events with the
pure :func:`apiwatch.models.otlp.spans_to_rum`, produces them to
``topics.rum`` keyed by service, and sends payloads that are not OTLP at all to
the dead-letter topic. Offsets are committed only after every message the
batch produced is acknowledged, so a crash replays from the last commit and
loses nothing (each event keeps a stable ``event_id`` made of the trace and
span ids, so replays can be recognised downstream).

The main worker starts it with :func:`run_otlp_bridge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter

from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.models.otlp import OtlpDecodeError, spans_to_rum
from apiwatch.settings import Settings
from apiwatch.streams.kafka import ensure_topics, make_consumer, make_producer, topic_specs

log = logging.getLogger(__name__)

SPANS = Counter(
    "apiwatch_otlp_spans_total",
    "Spans read by the OTLP bridge, by outcome (converted, or the reason they were skipped).",
    ["outcome"],
)
MESSAGES = Counter(
    "apiwatch_otlp_messages_total",
    "Exporter messages read by the OTLP bridge, by outcome (converted, deadlettered).",
    ["outcome"],
)

#: First and longest pause between attempts to produce a batch while Kafka refuses it.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0


@dataclass
class Outgoing:
    """What one consumed batch turns into: messages to produce, offsets to commit after."""

    messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    events: int = 0
    deadlettered: int = 0
    skipped: Tally[str] = field(default_factory=Tally)


def convert_batch(
    batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    settings: Settings,
) -> Outgoing:
    """Turn a ``getmany`` batch into RUM and dead-letter messages (no I/O)."""
    out = Outgoing()
    for tp, records in batch.items():
        for record in records:
            _convert_record(record, settings, out)
        out.records += len(records)
        if records:
            out.offsets[tp] = records[-1].offset + 1
    return out


def _convert_record(
    record: ConsumerRecord[bytes, bytes], settings: Settings, out: Outgoing
) -> None:
    payload = record.value or b""
    try:
        conversion = spans_to_rum(payload, settings.otlp.encoding)
    except OtlpDecodeError as exc:
        letter = DeadLetter.of_record(
            record,
            reason=Reason.INVALID_EVENT,
            detail=f"OTLP trace export could not be decoded: {exc}",
        )
        log.warning(
            "dead-lettered undecodable OTLP payload at %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        out.messages.append(
            (settings.topics.deadletter, record.key, letter.model_dump_json().encode())
        )
        out.deadlettered += 1
        return
    for event in conversion.events:
        out.messages.append((settings.topics.rum, event["service"].encode(), orjson.dumps(event)))
    out.events += len(conversion.events)
    out.skipped.update(conversion.skip_reasons)


async def produce_all(
    producer: AIOKafkaProducer, messages: list[tuple[str, bytes | None, bytes]]
) -> None:
    """Send every message and wait until the broker acknowledged all of them."""
    futures: list[asyncio.Future[Any]] = []
    for topic, key, value in messages:
        futures.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*futures)


async def _deliver(
    producer: AIOKafkaProducer,
    messages: list[tuple[str, bytes | None, bytes]],
    stop: asyncio.Event,
) -> bool:
    """Produce with backoff until acknowledged; False if asked to stop first.

    Retrying the whole batch may duplicate some events, which the at-least-once
    contract allows; skipping ahead would lose them, which it does not.
    """
    delay = RETRY_FIRST_S
    while True:
        try:
            await produce_all(producer, messages)
            return True
        except KafkaError as exc:
            log.warning("producing OTLP-derived events failed (%s); retrying in %.1f s", exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
            return False
        delay = min(delay * 2, RETRY_MAX_S)


def _count(out: Outgoing) -> None:
    SPANS.labels("converted").inc(out.events)
    for reason, n in out.skipped.items():
        SPANS.labels(reason).inc(n)
    MESSAGES.labels("deadlettered").inc(out.deadlettered)
    MESSAGES.labels("converted").inc(out.records - out.deadlettered)


async def run_otlp_bridge(settings: Settings, stop: asyncio.Event) -> None:
    """Bridge ``topics.otlp`` to ``topics.rum`` until ``stop`` is set."""
    wanted = {settings.topics.otlp, settings.topics.rum, settings.topics.deadletter}
    await ensure_topics(settings.kafka, [s for s in topic_specs(settings) if s.name in wanted])
    consumer = make_consumer(settings.kafka, settings.topics.otlp, group_id=settings.otlp.group_id)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        await consumer.start()
        try:
            await _bridge(consumer, producer, settings, stop)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def _bridge(
    consumer: Any, producer: AIOKafkaProducer, settings: Settings, stop: asyncio.Event
) -> None:
    log.info("OTLP bridge: %s -> %s", settings.topics.otlp, settings.topics.rum)
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=250, max_records=settings.otlp.max_batch)
        if not batch:
            continue
        out = convert_batch(batch, settings)
        if not await _deliver(producer, out.messages, stop):
            return  # not committed: the batch is read again on the next start
        try:
            await consumer.commit(out.offsets)
        except CommitFailedError as exc:
            # A rebalance took the partitions away; their new owner re-reads from
            # the last commit, so this batch is delivered again, not lost.
            log.warning("OTLP bridge commit failed after a rebalance: %s", exc)
        _count(out)
