"""Detect stage (Faust): bucket summaries in, alert CloudEvents out.

Per series, a :class:`~apiwatch.models.monitor.SeriesMonitor` (baselines,
detectors, alert lifecycles) lives in a changelog-backed Faust table keyed by
series, on the partition of the series' summaries, so a restarted or
rebalanced worker resumes with its baselines. Alerts go to the alerts topic,
keyed by fingerprint. A message that cannot be processed is dead-lettered
with its coordinates; the agent never dies on one.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT, StreamT
from pydantic import ValidationError

from apiwatch.models.buckets import DetectMessage
from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.models.monitor import SeriesMonitor
from apiwatch.settings import Settings
from apiwatch.streams.metrics import Health, Metrics
from apiwatch.streams.restore import ChangelogCheck, SkipGuard

log = logging.getLogger(__name__)


class DetectStage:
    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, health: Health
    ) -> None:
        self.app = app
        self.settings = settings
        self.cfg = settings.detection
        self.source = settings.app.source
        self.metrics = metrics
        self.health = health
        t = settings.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.buckets = app.topic(t.buckets, partitions=t.partitions, **raw)
        # Alerts go through the link stage on their way to the alerts topic.
        self.alerts = app.topic(t.alerts_pending, partitions=1, **raw)
        self.deadletter = app.topic(t.deadletter, **raw)
        self.monitors = app.Table(
            "monitors",
            default=None,
            partitions=t.partitions,
            # key_type=bytes, not only the schema: Faust picks the serializer it
            # decodes changelog keys with during recovery from key_type (json by
            # default), so raw keys failed to decode and a restart never recovered.
            key_type=bytes,
            schema=faust.Schema(key_serializer="raw", value_serializer="json"),
            extra_topic_configs={"cleanup.policy": "compact"},
            help="SeriesMonitor state per series",
        )
        # A restore that stopped at a reported end offset short of the real one is
        # caught up from the changelog before the partition's first message.
        self.restore_check = ChangelogCheck(app, self.monitors, settings)
        # The buckets topic has no offset gaps: a jump means messages a rebalance skipped.
        self.skips = SkipGuard(self.monitors, settings, t.buckets, "detect")
        self.processed = 0
        app.agent(self.buckets, name="apiwatch.detect")(self.process)

    async def process(self, stream: StreamT[bytes]) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            msg = event.message
            try:
                await self.restore_check.ensure(msg.partition)
                # Seen on a loaded machine: buckets missing from baselines for good.
                for r in await self.skips.missed(msg.partition, msg.offset):
                    try:
                        await self.handle(r.value, r.key)
                    except Exception:
                        log.exception("detect failed on %s[%d]@%d", r.topic, r.partition, r.offset)
                await self.handle(event.value, event.key)
            except Exception as exc:  # one poison message must not stop the agent
                log.exception("detect failed on %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                await self._dead_letter(event, Reason.UNSUPPORTED, f"detect failed: {exc!r}")
            self.skips.mark(msg.partition, msg.offset)
            self.processed += 1
            self.health.beat("detect", processed=self.processed)

    async def handle(self, value: bytes, key: bytes | None) -> None:
        try:
            body = DetectMessage.model_validate_json(b'{"body":' + value + b"}").body
        except ValidationError as exc:
            raise ValueError(
                f"not a bucket summary or synthetic run: {exc.error_count()} errors"
            ) from exc
        series_key = body.series.encode()
        state = self.monitors.get(series_key)
        monitor = (
            SeriesMonitor.from_state(self.cfg, state)
            if state is not None
            else SeriesMonitor(self.cfg, body.series)
        )
        emissions = monitor.observe(body)
        self.monitors[series_key] = monitor.to_state()
        for em in emissions:
            ev = em.event(self.source)
            await self.alerts.send(
                key=em.alert.fingerprint.encode(), value=ev.model_dump_json().encode()
            )
            self.metrics.alerts.labels(em.alert.kind.value, em.transition).inc()
            log.info("alert %s %s: %s", em.transition, em.alert.kind.value, em.alert.summary)

    async def _dead_letter(self, event: EventT[bytes], reason: Reason, detail: str) -> None:
        msg = event.message
        letter = DeadLetter.build(
            msg.value if isinstance(msg.value, bytes) else b"",
            reason=reason,
            detail=detail,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )
        await self.deadletter.send(
            key=f"{msg.topic}:{msg.partition}:{msg.offset}".encode(),
            value=letter.model_dump_json().encode(),
        )
        self.metrics.dead_letters.labels(reason.value).inc()
