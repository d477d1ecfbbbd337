"""Retry: send notifications from the retry topics once they are due.

Records of a retry tier come due in about the order they were written (each
tier holds one band of delays), so a partition is read head first: a record
not yet due waits in memory and its partition is paused until it is due, which
bounds memory without in-memory timers holding anything Kafka does not also
hold. Offsets are committed only once the send is settled.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from apiwatch.models.delivery.notification import Notification
from apiwatch.streams.deliver.offsets import OffsetTracker, TopicPartition
from apiwatch.streams.deliver.records import track_and_decode
from apiwatch.streams.deliver.sender import Sender

log = logging.getLogger(__name__)


class Pausable(Protocol):
    """The two consumer calls the stage needs (aiokafka's, with ``(topic, partition)``)."""

    def pause(self, tp: TopicPartition) -> None: ...

    def resume(self, tp: TopicPartition) -> None: ...


class RetryStage:
    """Holds not-yet-due retries per partition and hands due ones to the sender."""

    def __init__(
        self,
        sender: Sender,
        tracker: OffsetTracker,
        flow: Pausable,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._sender = sender
        self._tracker = tracker
        self._flow = flow
        self._clock = clock
        self._waiting: dict[TopicPartition, deque[tuple[int, Notification]]] = {}

    def handle(self, records: Iterable[Any]) -> None:
        touched: set[TopicPartition] = set()
        for record in records:
            notification = track_and_decode(Notification, record, self._tracker)
            if notification is None:
                continue
            tp = (record.topic, record.partition)
            self._waiting.setdefault(tp, deque()).append((record.offset, notification))
            touched.add(tp)
        for tp in touched:
            self._release(tp)

    def tick(self) -> None:
        for tp in list(self._waiting):
            self._release(tp)

    def _release(self, tp: TopicPartition) -> None:
        queue = self._waiting[tp]
        now = self._clock()
        while queue and (queue[0][1].not_before is None or queue[0][1].not_before <= now):
            offset, notification = queue.popleft()
            self._sender.submit(notification, partial(self._tracker.done, tp, offset))
        if queue:
            self._flow.pause(tp)
        else:
            del self._waiting[tp]
            self._flow.resume(tp)

    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def revoke(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._waiting.pop(tp, None)
