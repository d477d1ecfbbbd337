"""Publish synthetic results to Kafka, keeping every result until the broker has it.

A result goes into a pending queue first; a background task produces the
queue in order, keyed by check id, and removes results only once the broker
acknowledged them. While Kafka is down the results wait and the task retries
with backoff, reconnecting from scratch each time. The queue is bounded
(``checks.max_pending``): past the bound the oldest result is dropped, counted
and logged, because an unbounded queue would end the runner instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from apiwatch.settings import KafkaConfig
from apiwatch.streams.kafka import make_producer

log = logging.getLogger(__name__)


class ResultPublisher:
    """A retrying, order-keeping producer of ``(key, value)`` messages to one topic."""

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        max_pending: int = 10_000,
        retry_first_s: float = 0.5,
        retry_max_s: float = 30.0,
        batch: int = 500,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.max_pending = max_pending
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.batch = batch
        self.published = 0
        self.dropped = 0
        self._pending: deque[tuple[int, bytes, bytes]] = deque()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, key: str, value: bytes) -> None:
        """Queue one message; never blocks, never raises."""
        self._pending.append((next(self._seq), key.encode(), value))
        if len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.dropped += 1
            log.error(
                "%d results pending for Kafka (max_pending); dropped the oldest, %d so far",
                self.max_pending,
                self.dropped,
            )
        self._wake.set()

    async def publish_pending(self) -> None:
        """Produce everything pending now; raise (keeping the rest) if Kafka refuses."""
        while self._pending:
            if self._producer is None:
                producer = make_producer(self.kafka)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            chunk = list(itertools.islice(self._pending, self.batch))
            futures: list[asyncio.Future[Any]] = []
            for _, key, value in chunk:
                futures.append(await self._producer.send(self.topic, value, key=key))
            await asyncio.gather(*futures)
            # submit() may have dropped old entries meanwhile: remove by sequence number.
            last = chunk[-1][0]
            while self._pending and self._pending[0][0] <= last:
                self._pending.popleft()
            self.published += len(chunk)

    async def _attempt(self) -> bool:
        try:
            await self.publish_pending()
            return True
        except (KafkaError, OSError) as exc:
            log.warning(
                "cannot publish %d results to %s (%s); keeping them", self.pending, self.topic, exc
            )
            await self._reset()
            return False

    async def run(self, stop: asyncio.Event) -> None:
        """Publish as results arrive until ``stop``; retry with backoff while Kafka is down."""
        delay = self.retry_first_s
        while not stop.is_set():
            if not self._pending:
                self._wake.clear()
                await _first_of(self._wake, stop)
                continue
            if await self._attempt():
                delay = self.retry_first_s
                continue
            await _first_of(stop, timeout_s=delay)
            delay = min(delay * 2, self.retry_max_s)

    async def drain(self, timeout_s: float) -> int:
        """Keep trying until nothing is pending or the time is up; return what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = self.retry_first_s
        while self._pending and loop.time() < deadline:
            try:
                await asyncio.wait_for(self._attempt(), max(0.1, deadline - loop.time()))
            except TimeoutError:
                await self._reset()
                break
            if self._pending:
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                delay = min(delay * 2, self.retry_max_s)
        return self.pending

    async def close(self) -> None:
        await self._reset()

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()


async def _first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Wait until any of the events is set, or the timeout passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
