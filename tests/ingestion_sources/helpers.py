"""Helpers for the ingestion-source tests: group-less topic reads, waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord, TopicPartition

from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_consumer

ReadTopic = Callable[..., Awaitable[list[ConsumerRecord[bytes, bytes]]]]


async def read_topic(
    settings: Settings, topic: str, expected: int, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read at least ``expected`` records from every partition of ``topic``.

    Partitions are assigned by hand (no group, so no join stall on the embedded
    broker) and read until the count is reached or the deadline passes: the
    broker's reported end offsets cannot be trusted (DESIGN.md).
    """
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


async def await_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()
