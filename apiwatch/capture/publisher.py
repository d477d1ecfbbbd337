"""The RUM publisher: a bounded in-process queue drained to Kafka by a background thread.

The request path only appends a dict to a deque: no I/O, no lock, no
serialisation. A daemon thread runs its own asyncio loop with an aiokafka
producer, takes events off the queue in batches, serialises them and sends
them keyed by service name. When Kafka is slow or down the queue fills up to
``queue_size`` and new events are dropped and counted ("shedding load"): the
application never blocks on, nor fails because of, its monitoring.

The thread starts on the first event, and again in a forked child (gunicorn's
pre-fork workers), since threads do not survive ``fork()``. Events the broker
refuses once connected are counted as failed, not retried: RUM is a stream of
samples, and holding them would only move the shedding elsewhere.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from apiwatch.capture.config import CaptureConfig
from apiwatch.streams.kafka import make_producer

log = logging.getLogger(__name__)

EVENTS = Counter(
    "apiwatch_capture_events_total",
    "RUM events captured in this process, by outcome (sent, dropped, failed).",
    ["outcome"],
)

#: How often the sender looks at an empty queue; bounds the delay to Kafka.
POLL_S = 0.02
#: Events taken off the queue per send round.
BATCH = 1_000


@dataclass(frozen=True)
class CaptureStats:
    queued: int
    sent: int
    dropped: int
    failed: int


class RumPublisher:
    """Publishes RUM events from any thread, without ever blocking the caller."""

    def __init__(self, config: CaptureConfig, retry_max_s: float = 10.0) -> None:
        self.config = config
        self.retry_max_s = retry_max_s
        self._queue: deque[dict[str, Any]] = deque()
        self._counts_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._sent = self._dropped = self._failed = 0
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._hooks_installed = False
        self._key = config.service.encode()

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event, or drop and count it when the queue is full. Never raises."""
        if self._thread is None:
            self._start()
        if len(self._queue) >= self.config.queue_size:
            self._count(dropped=1)
            return
        self._queue.append(event)

    def shed_if_full(self) -> bool:
        """Drop and count an event before it is even built, when it could not be queued."""
        if self._thread is not None and len(self._queue) >= self.config.queue_size:
            self._count(dropped=1)
            return True
        return False

    def stats(self) -> CaptureStats:
        with self._counts_lock:
            return CaptureStats(len(self._queue), self._sent, self._dropped, self._failed)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within ``timeout_s``) and stop the thread."""
        self._closing.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout_s)

    def _count(self, sent: int = 0, dropped: int = 0, failed: int = 0) -> None:
        with self._counts_lock:
            self._sent += sent
            self._dropped += dropped
            self._failed += failed
        for outcome, n in (("sent", sent), ("dropped", dropped), ("failed", failed)):
            if n:
                EVENTS.labels(outcome).inc(n)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._closing.clear()
            self._thread = threading.Thread(
                target=self._thread_main, name="apiwatch-rum-publisher", daemon=True
            )
            self._thread.start()
            if not self._hooks_installed:
                self._hooks_installed = True
                atexit.register(self.close)
                os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # The sender thread did not survive fork(); the child starts its own on
        # its first event, and leaves the parent's queued events to the parent.
        self._thread = None
        self._queue.clear()
        self._start_lock = threading.Lock()
        self._counts_lock = threading.Lock()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._send_loop())
        except Exception:
            log.exception("the RUM publisher stopped; events are dropped from now on")

    async def _send_loop(self) -> None:
        producer: AIOKafkaProducer | None = None
        delay = 0.2
        try:
            while not (self._closing.is_set() and (not self._queue or producer is None)):
                if producer is None:
                    producer = await self._connect()
                    if producer is None:
                        await asyncio.sleep(delay if not self._closing.is_set() else 0)
                        delay = min(delay * 2, self.retry_max_s)
                        continue
                    delay = 0.2
                if not self._queue:
                    await asyncio.sleep(POLL_S)
                    continue
                await self._send_batch(producer)
        finally:
            if producer is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()

    async def _connect(self) -> AIOKafkaProducer | None:
        # Events keep queueing (then shedding) while there is no connection.
        producer = make_producer(self.config.kafka)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            log.warning("RUM capture cannot reach Kafka (%s); events queue, then drop", exc)
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            return None
        return producer

    async def _send_batch(self, producer: AIOKafkaProducer) -> None:
        topic = self.config.topic
        for _ in range(min(BATCH, len(self._queue))):
            event = self._queue.popleft()
            try:
                future = await producer.send(topic, orjson.dumps(event), key=self._key)
            except KafkaError:
                self._count(failed=1)
                continue
            future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._count(failed=1)
        else:
            self._count(sent=1)
