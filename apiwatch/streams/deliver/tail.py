"""Read a whole topic into memory and keep following it, without a consumer group.

Every delivery worker needs *all* silences and *all* firing alerts, not just
the partitions it owns, so these readers assign every partition to themselves
and start from the beginning. A group-less reader also skips the embedded
broker's slow first group join.

"Caught up" is never decided from the partition end offsets, which the
embedded broker reports short (DESIGN.md): either the owner writes a marker
record and reads until it sees it (:meth:`TopicTail.poll` hands it over like
any record), or it waits until fetches come back empty for a while
(:meth:`TopicTail.until_idle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_consumer

log = logging.getLogger(__name__)

Apply = Callable[[Any], None]


class TopicTail:
    """Follows every partition of ``topic`` from the start, calling ``apply`` per record."""

    def __init__(self, settings: Settings, topic: str, apply: Apply) -> None:
        self.topic = topic
        self.apply = apply
        self.partitions: list[int] = []
        self._consumer = make_consumer(settings.kafka, group_id=None)

    async def start(self, timeout_s: float = 30.0) -> None:
        await self._consumer.start()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            # topics() refreshes metadata; a just-created topic may take a moment to show.
            await self._consumer.topics()
            found = self._consumer.partitions_for_topic(self.topic)
            if found:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topic {self.topic} has no partitions after {timeout_s:g} s")
            await asyncio.sleep(0.1)
        self.partitions = sorted(found)
        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)

    async def poll(self, timeout_ms: int) -> int:
        """Apply what arrives within ``timeout_ms``; return how many records that was."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        count = 0
        for records in batches.values():
            for record in records:
                self.apply(record)
                count += 1
        return count

    async def until_idle(self, idle_s: float, timeout_s: float = 60.0) -> None:
        """Read until no record arrived for ``idle_s`` (twice in a row)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        empty = 0
        while empty < 2:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{self.topic} kept producing for {timeout_s:g} s")
            empty = 0 if await self.poll(int(idle_s * 500)) else empty + 1

    async def follow(self) -> None:
        """Keep applying new records until cancelled."""
        while True:
            await self.poll(1000)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
