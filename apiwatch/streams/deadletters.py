"""Send rejected messages to the dead-letter topic, whole, with reason and origin."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from apiwatch.models.deadletter import DeadLetter, Reason, SourceRecord
from apiwatch.streams.metrics import Metrics

log = logging.getLogger(__name__)


class DeadLetterSink:
    """Produces :class:`DeadLetter` records; callers flush the producer before committing."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, metrics: Metrics | None = None):
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.pending: list[asyncio.Future[object]] = []

    async def send(self, record: SourceRecord, *, reason: Reason, detail: str) -> None:
        letter = DeadLetter.of_record(record, reason=reason, detail=detail)
        topic, partition, offset = record.topic, record.partition, record.offset
        # Coordinates, not payloads, go to the log: payloads may carry personal data.
        log.warning(
            "dead letter %s[%d]@%d: %s: %s", topic, partition, offset, reason.value, detail[:200]
        )
        fut = await self.producer.send(
            self.topic,
            value=letter.model_dump_json().encode(),
            key=f"{topic}:{partition}:{offset}".encode(),
            headers=[("apiwatch-reason", reason.value.encode())],
        )
        self.pending.append(fut)
        if self.metrics is not None:
            self.metrics.dead_letters.labels(reason.value).inc()

    async def wait(self) -> None:
        """Wait until every dead letter sent so far is acknowledged by the broker."""
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)
