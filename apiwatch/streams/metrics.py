"""The service observes itself: Prometheus metrics and a health endpoint.

One registry per process (not the global default), so tests and several
stages in one process never collide. :class:`HttpEndpoint` serves
``/metrics`` (Prometheus text format) and ``/health`` (JSON: each stage's
state and when it last made progress) on the configured host and port.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter(
            "apiwatch_events_in", "Valid events ingested", ["topic"], registry=r
        )
        self.messages_in = Counter(
            "apiwatch_messages_in", "Raw messages consumed", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "apiwatch_dead_letters",
            "Messages sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.late_events = Counter(
            "apiwatch_late_events", "Events that arrived after their bucket closed", registry=r
        )
        self.buckets_out = Counter(
            "apiwatch_bucket_summaries", "Bucket summaries emitted to detection", registry=r
        )
        self.alerts = Counter(
            "apiwatch_alerts", "Alert transitions emitted", ["kind", "transition"], registry=r
        )
        self.processing_delay = Histogram(
            "apiwatch_processing_delay_seconds",
            "Time from a record's broker timestamp to its processing",
            ["stage"],
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "apiwatch_consumer_lag",
            "Records behind the partition end, by topic and stage (topic:stage)",
            ["topic"],
            registry=r,
        )
        self.ingest_batch_failures = Counter(
            "apiwatch_ingest_batch_failures",
            "Ingest batches whose processing raised unexpectedly (messages retried one by one)",
            ["stage"],
            registry=r,
        )
        self.broker_up = Gauge(
            "apiwatch_broker_up",
            "1 while the Kafka broker answers, 0 while it does not",
            registry=r,
        )
        self.broker_state_lost = Counter(
            "apiwatch_broker_state_lost",
            "Times the broker came back without the topics it had (a restart without persistence)",
            registry=r,
        )
        self.topics_recreated = Counter(
            "apiwatch_topics_recreated",
            "Topics deleted and created again at start after the broker lost its state "
            "(partitions no fetch can read, or empty with the wrong partition count)",
            ["topic"],
            registry=r,
        )
        self.open_buckets = Gauge("apiwatch_open_buckets", "Open event-time buckets", registry=r)
        self.series = Gauge("apiwatch_series", "Series tracked by ingest", registry=r)


@dataclass
class Health:
    """Liveness of the stages of one worker process."""

    started: float = field(default_factory=time.time)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def beat(self, stage: str, **info: Any) -> None:
        self.stages[stage] = {"state": "running", "last_progress": time.time(), **info}

    def set_state(self, stage: str, state: str, **info: Any) -> None:
        entry = self.stages.setdefault(stage, {})
        entry.update(state=state, **info)

    @property
    def ok(self) -> bool:
        return all(s.get("state") == "running" for s in self.stages.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "uptime_s": round(time.time() - self.started, 1),
            "stages": self.stages,
        }


class HttpEndpoint:
    """``/metrics`` and ``/health`` on one aiohttp server; port 0 picks a free one."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response(self.health.as_dict(), status=200 if self.health.ok else 503)
