"""Route: match each alert against the routing tree and re-key it by its group.

The alerts topic is keyed by fingerprint, but a group spans many
fingerprints. Writing each (alert, route) to the routed topic keyed by group
key puts every alert of a group on one partition, so exactly one worker
groups it, however many workers share the stage. Offsets of the alerts topic
are committed once the routed records are acknowledged by Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.models.delivery.matchers import alert_labels
from apiwatch.models.delivery.notification import RoutedAlert
from apiwatch.models.delivery.routing import Route, group_key, group_labels, match_routes
from apiwatch.settings import Settings, describe_validation_error
from apiwatch.streams.deliver.offsets import OffsetTracker

log = logging.getLogger(__name__)


def route_alert(tree: Route, event: AlertEvent) -> list[RoutedAlert]:
    """One routed record per matching route that names a receiver."""
    labels = alert_labels(event.data)
    return [
        RoutedAlert(
            route_id=route.id,
            group_key=group_key(route, labels),
            group_labels=group_labels(route, labels),
            event=event,
        )
        for route in match_routes(tree, labels)
        if route.receiver is not None
    ]


class RouteStage:
    """Consumes alert records, produces routed records."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, tree: Route, tracker: OffsetTracker
    ) -> None:
        self.routed_topic = settings.delivery.topics.routed
        self.deadletter_topic = settings.topics.deadletter
        self._producer = producer
        self._tree = tree
        self._tracker = tracker

    async def handle(self, records: Sequence[Any]) -> None:
        sends: list[asyncio.Future[Any]] = []
        for record in records:
            self._tracker.begin((record.topic, record.partition), record.offset)
            try:
                event = AlertEvent.model_validate_json(record.value)
            except ValidationError as exc:
                sends.append(await self._dead_letter(record, describe_validation_error(exc)))
                continue
            for routed in route_alert(self._tree, event):
                sends.append(
                    await self._producer.send(
                        self.routed_topic,
                        key=routed.group_key.encode(),
                        value=routed.model_dump_json().encode(),
                    )
                )
        await asyncio.gather(*sends)
        for record in records:
            self._tracker.done((record.topic, record.partition), record.offset)

    async def _dead_letter(self, record: Any, detail: str) -> asyncio.Future[Any]:
        log.error(
            "invalid alert at %s[%d]@%d dead-lettered: %s",
            record.topic,
            record.partition,
            record.offset,
            detail,
        )
        letter = DeadLetter.of_record(
            record,
            reason=Reason.INVALID_EVENT,
            detail=detail,
        )
        future: asyncio.Future[Any] = await self._producer.send(
            self.deadletter_topic, key=record.key, value=letter.model_dump_json().encode()
        )
        return future
