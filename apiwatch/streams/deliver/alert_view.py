"""The alerts firing right now across all partitions, for inhibition.

A source alert (say, a synthetic outage) and the alerts it inhibits usually
sit on different partitions of the alerts topic, so each worker follows the
whole topic. Alerts are few (the stream has already reduced raw events by
orders of magnitude), so reading them from the start is cheap.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from apiwatch.models.alerts import Alert, AlertEvent, AlertStatus
from apiwatch.settings import Settings
from apiwatch.streams.deliver.tail import TopicTail

log = logging.getLogger(__name__)


class AlertView:
    """Latest state per fingerprint; :meth:`firing` lists the ones firing."""

    def __init__(self, settings: Settings) -> None:
        self._latest: dict[str, tuple[datetime, Alert]] = {}
        self._tail = TopicTail(settings, settings.topics.alerts, self._apply)

    def _apply(self, record: Any) -> None:
        if record.value is None:
            return
        try:
            event = AlertEvent.model_validate_json(record.value)
        except ValidationError:
            # The route stage dead-letters it; here it just does not count.
            return
        current = self._latest.get(event.subject)
        if current is not None and current[0] > event.time:
            return
        if event.data.status is AlertStatus.FIRING:
            self._latest[event.subject] = (event.time, event.data)
        else:
            self._latest.pop(event.subject, None)

    def firing(self) -> list[Alert]:
        return [alert for _, alert in self._latest.values()]

    async def restore(self, idle_s: float = 0.5) -> None:
        await self._tail.start()
        await self._tail.until_idle(idle_s)

    async def follow(self) -> None:
        await self._tail.follow()

    async def stop(self) -> None:
        await self._tail.stop()
