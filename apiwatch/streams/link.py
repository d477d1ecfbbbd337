"""Link stage (Faust): RUM and synthetic alerts on one endpoint become one incident.

The detect agents run per series, so a RUM alert and a synthetic alert on the
same endpoint are judged on different partitions. They meet here: detection
sends its alerts to a one-partition topic, and this agent passes each through
:class:`~apiwatch.models.linking.IncidentLinker` (its state in a changelog-backed
table) before it reaches the alerts topic, enriched with ``related`` and
``sources``, plus an ``updated`` emission for each alert it was linked to.
Alert volume is small, so one partition is plenty and keeps the view whole.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.models.linking import IncidentLinker
from apiwatch.models.monitor import Emission
from apiwatch.settings import Settings
from apiwatch.streams.metrics import Health, Metrics
from apiwatch.streams.restore import SkipGuard

log = logging.getLogger(__name__)

_STATE_KEY = b"linker"


class LinkStage:
    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, health: Health
    ) -> None:
        t = settings.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.source = settings.app.source
        self.metrics = metrics
        self.health = health
        self.pending = app.topic(t.alerts_pending, partitions=1, **raw)
        self.alerts = app.topic(t.alerts, **raw)
        self.deadletter = app.topic(t.deadletter, **raw)
        self.state = app.Table(
            "linker",
            default=None,
            partitions=1,
            # key_type=bytes too: Faust decodes changelog keys during recovery with the
            # serializer of key_type (json by default); raw keys would never recover.
            key_type=bytes,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
            extra_topic_configs={"cleanup.policy": "compact"},
            help="IncidentLinker state: firing RUM and synthetic alerts by endpoint",
        )
        # Seen in a worker killed during a rebalance: a detected alert never published.
        self.skips = SkipGuard(self.state, settings, t.alerts_pending, "link")
        app.agent(self.pending, name="apiwatch.link")(self.process)

    async def process(self, stream: StreamT[bytes]) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            msg = event.message
            try:
                for r in await self.skips.missed(msg.partition, msg.offset):
                    try:
                        await self.handle(r.value)
                    except Exception:
                        log.exception("link failed on %s[%d]@%d", r.topic, r.partition, r.offset)
                await self.handle(event.value)
            except Exception as exc:  # a poison alert must not stop every other alert
                log.exception("link failed on %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                letter = DeadLetter.build(
                    msg.value if isinstance(msg.value, bytes) else b"",
                    reason=Reason.UNSUPPORTED,
                    detail=f"link failed: {exc!r}",
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                )
                await self.deadletter.send(
                    key=f"{msg.topic}:{msg.partition}:{msg.offset}".encode(),
                    value=letter.model_dump_json().encode(),
                )
            self.skips.mark(msg.partition, msg.offset)
            self.health.beat("link")

    async def handle(self, value: bytes) -> None:
        ev = AlertEvent.model_validate_json(value)
        state = self.state.get(_STATE_KEY)
        linker = IncidentLinker.from_state(state) if state is not None else IncidentLinker()
        out = linker.link(Emission(ev.transition, ev.data, ev.id, ev.time))
        self.state[_STATE_KEY] = linker.to_state()
        for em in out:
            linked = em.event(ev.source if em.event_id == ev.id else self.source)
            await self.alerts.send(
                key=em.alert.fingerprint.encode(), value=linked.model_dump_json().encode()
            )
            if em.event_id != ev.id:
                self.metrics.alerts.labels(em.alert.kind.value, em.transition).inc()
