"""Send notifications, and settle every outcome durably: sent, queued for retry, or dead.

Each receiver has its own lane (a semaphore of ``max_in_flight``), so a slow
or dead receiver only ever occupies its own lane. A send that fails
retryably is written to a retry topic with its due time; one that cannot
succeed, or has used its attempts, goes to the DLQ with the reason. Only then
does ``on_done`` run, which lets the caller commit the offsets behind it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from apiwatch.models.delivery.backoff import backoff_delay, tier_for_delay
from apiwatch.models.delivery.notification import (
    DeadReason,
    LogEntry,
    Notification,
    NotificationDeadLetter,
    Outcome,
)
from apiwatch.models.delivery.redact import redact
from apiwatch.settings import Settings
from apiwatch.streams.deliver.notify_log import write_entry
from apiwatch.streams.notify.base import Notifier, SendResult

log = logging.getLogger(__name__)


class Sender:
    """Runs sends as tasks, one lane per receiver; records any task failure in ``failure``."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        notifiers: dict[str, Notifier[Any]],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = settings.delivery
        self._producer = producer
        self._notifiers = notifiers
        self._rand = rand
        self._lanes = {
            name: asyncio.Semaphore(n.config.max_in_flight) for name, n in notifiers.items()
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, notification: Notification, on_done: Callable[[], None]) -> None:
        """Start sending; ``on_done`` runs once the outcome is durable."""
        task = asyncio.create_task(self._run(notification, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Kafka refused a retry, DLQ or log write: the offsets stay uncommitted and
            # the worker stops, so a restart replays rather than loses the notification.
            self.failure = task.exception()

    async def _run(self, notification: Notification, on_done: Callable[[], None]) -> None:
        notifier = self._notifiers.get(notification.receiver)
        if notifier is None:
            error = f"receiver {notification.receiver!r} is not configured"
            await self._dead(notification, "unknown", DeadReason.UNKNOWN_RECEIVER, error, None)
        else:
            async with self._lanes[notification.receiver]:
                result = await notifier.notify(notification)
            await self._settle(notification, notifier, result)
        on_done()

    async def _settle(
        self, notification: Notification, notifier: Notifier[Any], result: SendResult
    ) -> None:
        now = datetime.now(tz=UTC)
        if result.ok:
            log.info(
                "sent notification %s to %s (%d alerts, attempt %d)",
                notification.id,
                notifier.name,
                len(notification.alerts),
                notification.attempt,
            )
            await self._log(notification, notifier.type, Outcome.SENT, result.status_code, None)
            return
        # Redact once more here: whatever a notifier returns, no secret gets written down.
        error = redact(result.error or "failed", notifier.secrets())
        if not result.retryable:
            await self._dead(
                notification, notifier.type, DeadReason.NOT_RETRYABLE, error, result.status_code
            )
        elif notification.attempt >= self.cfg.retry.max_attempts:
            await self._dead(
                notification, notifier.type, DeadReason.RETRIES_EXHAUSTED, error, result.status_code
            )
        else:
            await self._retry(notification, notifier.type, error, result, now)

    async def _retry(
        self,
        notification: Notification,
        receiver_type: str,
        error: str,
        result: SendResult,
        now: datetime,
    ) -> None:
        retry = self.cfg.retry
        delay = backoff_delay(notification.attempt, retry, self._rand)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, retry.max_retry_after_s))
        due = now + timedelta(seconds=delay)
        again = notification.model_copy(
            update={"attempt": notification.attempt + 1, "not_before": due, "last_error": error}
        )
        topic = self.cfg.retry_topics()[tier_for_delay(delay, retry)]
        await self._producer.send_and_wait(
            topic, key=notification.id.encode(), value=again.model_dump_json().encode()
        )
        log.warning(
            "notification %s to %s failed on attempt %d (%s); retry in %.1f s via %s",
            notification.id,
            notification.receiver,
            notification.attempt,
            error,
            delay,
            topic,
        )
        await self._log(
            notification, receiver_type, Outcome.RETRY_SCHEDULED, result.status_code, error, due
        )

    async def _dead(
        self,
        notification: Notification,
        receiver_type: str,
        reason: DeadReason,
        error: str,
        status_code: int | None,
    ) -> None:
        letter = NotificationDeadLetter(
            reason=reason,
            error=error,
            attempts=notification.attempt,
            receiver=notification.receiver,
            failed_at=datetime.now(tz=UTC),
            notification=notification,
        )
        await self._producer.send_and_wait(
            self.cfg.topics.dlq,
            key=notification.id.encode(),
            value=letter.model_dump_json().encode(),
        )
        log.error(
            "notification %s to %s dead-lettered after %d attempts: %s (%s)",
            notification.id,
            notification.receiver,
            notification.attempt,
            reason.value,
            error,
        )
        await self._log(
            notification, receiver_type, Outcome.DEAD_LETTERED, status_code, f"{reason}: {error}"
        )

    async def _log(
        self,
        notification: Notification,
        receiver_type: str,
        outcome: Outcome,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None = None,
    ) -> None:
        entry = LogEntry(
            at=datetime.now(tz=UTC),
            notification_id=notification.id,
            receiver=notification.receiver,
            receiver_type=receiver_type,
            group_key=notification.group_key,
            status=notification.status,
            fingerprints=[e.subject for e in notification.alerts],
            event_ids=[e.id for e in notification.alerts],
            attempt=notification.attempt,
            outcome=outcome,
            status_code=status_code,
            error=error,
            retry_at=retry_at,
        )
        await write_entry(self._producer, self.cfg.topics.log, entry)

    async def wait_below(self, limit: int) -> None:
        """Back-pressure: return once fewer than ``limit`` sends are in flight."""
        while len(self._tasks) >= limit:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, timeout_s: float) -> None:
        """Let running sends finish for up to ``timeout_s``, then cancel the rest.

        A cancelled send never calls ``on_done``: its offsets stay uncommitted and
        the next owner of the partition sends it again.
        """
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
