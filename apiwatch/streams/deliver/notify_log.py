"""The notifications log: one record per send attempt outcome, in a Kafka topic.

Written by the sender, read by ``apiwatch notifications log``. Entries hold
receiver names, ids and redacted errors, never request bodies (they carry
routing keys) or URLs (Slack's carry tokens).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from apiwatch.models.delivery.notification import LogEntry
from apiwatch.settings import Settings
from apiwatch.streams.deliver.tail import TopicTail

log = logging.getLogger(__name__)


async def write_entry(producer: AIOKafkaProducer, topic: str, entry: LogEntry) -> None:
    await producer.send_and_wait(
        topic, key=entry.notification_id.encode(), value=entry.model_dump_json().encode()
    )


async def read_log(
    settings: Settings,
    keep: Callable[[LogEntry], bool] = lambda _: True,
    idle_s: float = 1.0,
) -> list[LogEntry]:
    """Every entry ``keep`` accepts, oldest first (read until the topic goes quiet)."""
    entries: list[LogEntry] = []

    def apply(record: Any) -> None:
        try:
            entry = LogEntry.model_validate_json(record.value)
        except (ValidationError, TypeError):
            log.warning(
                "skipping invalid log entry at %s[%d]@%d",
                record.topic,
                record.partition,
                record.offset,
            )
            return
        if keep(entry):
            entries.append(entry)

    tail = TopicTail(settings, settings.delivery.topics.log, apply)
    try:
        await tail.start()
        await tail.until_idle(idle_s)
    finally:
        await tail.stop()
    # Partitions interleave; time order is what a reader expects.
    entries.sort(key=lambda e: e.at)
    return entries
