"""Silences in a compacted Kafka topic, so every delivery worker sees all of them and
none is lost on restart. Key = silence id, value = the silence as JSON.

On start a store writes a marker record of its own and reads until it sees it:
then everything written before has been applied. The marker is deleted again
with a tombstone, which compaction removes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from apiwatch.models.delivery.silence import Silence, Silences
from apiwatch.settings import Settings
from apiwatch.streams.deliver.tail import TopicTail
from apiwatch.streams.deliver.topics import delivery_topic_specs
from apiwatch.streams.kafka import ensure_topics, make_producer

log = logging.getLogger(__name__)

MARKER_PREFIX = "__marker__:"


class SilenceStore:
    """The silences of the cluster, kept current from the topic."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.topic = settings.delivery.topics.silences
        self.silences = Silences()
        self._producer = producer
        self._markers: set[tuple[int, str]] = set()
        self._tail = TopicTail(settings, self.topic, self._apply)

    def _apply(self, record: Any) -> None:
        key = record.key.decode() if record.key else ""
        if key.startswith(MARKER_PREFIX):
            self._markers.add((record.partition, key))
            return
        if record.value is None:
            return
        try:
            self.silences.upsert(Silence.model_validate_json(record.value))
        except ValidationError as exc:
            log.warning(
                "skipping invalid silence at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc.errors()[0]["msg"],
            )

    async def restore(self, timeout_s: float = 30.0) -> None:
        """Read every silence written before this call."""
        await self._tail.start()
        marker = f"{MARKER_PREFIX}{uuid.uuid4()}"
        for partition in self._tail.partitions:
            await self._producer.send_and_wait(
                self.topic, key=marker.encode(), value=b"{}", partition=partition
            )
        wanted = {(p, marker) for p in self._tail.partitions}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not wanted <= self._markers:
            if loop.time() > deadline:
                raise TimeoutError(f"silences topic {self.topic} not read within {timeout_s:g} s")
            await self._tail.poll(200)
        for partition in self._tail.partitions:
            await self._producer.send_and_wait(
                self.topic, key=marker.encode(), value=None, partition=partition
            )

    async def put(self, silence: Silence) -> None:
        """Write a new or changed silence; it applies here at once, elsewhere on read."""
        await self._producer.send_and_wait(
            self.topic, key=silence.id.encode(), value=silence.model_dump_json().encode()
        )
        self.silences.upsert(silence)

    async def follow(self) -> None:
        await self._tail.follow()

    async def stop(self) -> None:
        await self._tail.stop()


@asynccontextmanager
async def open_silences(settings: Settings) -> AsyncIterator[SilenceStore]:
    """A restored store with its own producer, for the CLI."""
    await ensure_topics(settings.kafka, delivery_topic_specs(settings))
    producer = make_producer(settings.kafka)
    await producer.start()
    store = SilenceStore(settings, producer)
    try:
        await store.restore()
        yield store
    finally:
        await store.stop()
        await producer.stop()
