"""``apiwatch worker``: one process running the stages against any Kafka.

Roles (all on by default): ``ingest`` (batched aiokafka raw path), ``detect``
(Faust agent and tables), plus the optional stages registered in
:data:`EXTRA_ROLES`. With no bootstrap servers configured, the worker starts
the embedded broker itself and stops it on exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import NewTopic
from pydantic import SecretStr

from apiwatch.settings import Settings
from apiwatch.streams.broker import EmbeddedBroker
from apiwatch.streams.broker_watch import BrokerWatch
from apiwatch.streams.ingest import IngestStage
from apiwatch.streams.kafka import ensure_topics, topic_specs
from apiwatch.streams.metrics import Health, HttpEndpoint, Metrics

log = logging.getLogger(__name__)

#: A stage that runs until its stop event is set: (settings, stop) -> coroutine.
StageRunner = Callable[[Settings, asyncio.Event], Awaitable[None]]


def _extra_roles() -> dict[str, StageRunner]:
    """Stages other packages provide, by role name; imported lazily."""
    from apiwatch.streams.deliver import run_delivery
    from apiwatch.streams.otlp_bridge import run_otlp_bridge

    return {"deliver": run_delivery, "otlp": run_otlp_bridge}


CORE_ROLES = ("ingest", "detect", "access")

#: Exit code of a worker whose broker came back without its topics (EX_TEMPFAIL).
EXIT_BROKER_LOST = 75


@dataclass
class WorkerOptions:
    roles: set[str] = field(default_factory=lambda: set(CORE_ROLES) | set(_extra_roles()))
    loglevel: str = "info"


def all_roles() -> list[str]:
    return [*CORE_ROLES, *_extra_roles()]


def default_roles(settings: Settings) -> set[str]:
    """Every role, less the ones the configuration switches off."""
    roles = set(all_roles())
    if not settings.delivery.enabled:
        roles.discard("deliver")
    if not settings.access.enabled:
        roles.discard("access")
    return roles


def _plain(value: Any) -> Any:
    """Settings as YAML-ready data, secrets revealed (the file is written 0600)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def worker_env(settings: Settings, state_dir: Path, port: int) -> dict[str, str]:
    """Environment for a child ``apiwatch worker`` that runs with exactly these settings.

    The settings go to a config file in ``state_dir`` (readable by the owner only,
    since it may hold secrets) rather than dozens of variables, so no key is forgotten.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    app = settings.app.model_copy(update={"state_dir": state_dir, "http_port": port})
    data = _plain(settings.model_copy(update={"app": app}).model_dump(mode="python"))
    path = state_dir / "worker-config.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
    env["APIWATCH_CONFIG"] = str(path)
    return env


def _stage_task(
    role: str, runner: StageRunner, settings: Settings, stop: asyncio.Event, health: Health
) -> Callable[[], Awaitable[None]]:
    # A nullary coroutine function: Faust passes the app to tasks that take arguments.
    async def run() -> None:
        health.beat(role)
        try:
            await runner(settings, stop)
        finally:
            health.set_state(role, "stopped")

    run.__name__ = f"apiwatch_{role}"
    return run


def _ingest_task(stage: IngestStage, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await stage.run(stop)

    run.__name__ = f"apiwatch_{stage.name}"
    return run


def faust_topic_specs(app: Any, settings: Settings) -> list[NewTopic]:
    """Faust's own topics (table changelogs, the leader assignor topic), with their configs."""
    rf = settings.topics.replication_factor
    specs = [NewTopic(f"{app.conf.id}-__assignor-__leader", 1, rf)]
    for table in app.tables.values():
        topic = table.changelog_topic
        partitions = table.partitions or app.conf.topic_partitions
        configs = {"cleanup.policy": "compact", **(topic.config or {})}
        specs.append(NewTopic(topic.get_topic_name(), partitions, rf, topic_configs=configs))
    return specs


def with_bootstrap(settings: Settings, bootstrap: str) -> Settings:
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
    return settings.model_copy(update={"kafka": kafka})


def run_worker(settings: Settings, options: WorkerOptions) -> None:
    """Run until SIGTERM/SIGINT. Blocks; Faust's worker owns the event loop."""
    import faust.worker

    from apiwatch.streams.access import AccessExtension, access_topic_specs
    from apiwatch.streams.access_detect import AccessDetectStage
    from apiwatch.streams.detect import DetectStage
    from apiwatch.streams.faust_app import build_app
    from apiwatch.streams.link import LinkStage

    unknown = options.roles - set(all_roles())
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {all_roles()}")
    broker: EmbeddedBroker | None = None
    bootstrap = settings.kafka.bootstrap_servers
    if not bootstrap:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
        log.info("no Kafka configured: started the embedded broker on %s", bootstrap)
        settings = with_bootstrap(settings, bootstrap)
    try:
        access = settings.access.enabled
        specs = topic_specs(settings) + (access_topic_specs(settings) if access else [])
        asyncio.run(ensure_topics(settings.kafka, specs, bootstrap))
        run_access = access and "access" in options.roles
        # A process that runs only the access role is its own Faust app, so its
        # agents never share a consumer group with bucket detection elsewhere.
        app_id = settings.app.app_id
        if run_access and "detect" not in options.roles:
            app_id = f"{app_id}-access"
        app = build_app(settings, bootstrap, app_id=app_id)
        metrics, health = Metrics(), Health()
        if "detect" in options.roles:
            DetectStage(app, settings, metrics, health)
            LinkStage(app, settings, metrics, health)
        if run_access:
            AccessDetectStage(app, settings, metrics, health)
        stop = asyncio.Event()
        endpoint = HttpEndpoint(metrics, health, settings.app.http_host, settings.app.http_port)

        async def serve_http() -> None:
            port = await endpoint.start()
            log.info("metrics on http://%s:%d/metrics", settings.app.http_host, port)
            print(
                f"apiwatch worker: /metrics and /health on http://{settings.app.http_host}:{port}",
                flush=True,
            )

        app.task(serve_http)

        stages: list[IngestStage] = []
        if "ingest" in options.roles:
            stages.append(IngestStage(settings, metrics, health))
        if run_access:
            # Its own consumer group on the raw topic: it can run in its own process.
            stages.append(
                IngestStage(
                    settings,
                    metrics,
                    health,
                    extensions=[AccessExtension(settings)],
                    buckets=False,
                    group_id=f"{settings.ingest.group_id}-access",
                    name="access",
                )
            )
        for stage in stages:
            app.task(_ingest_task(stage, stop))

        async def on_lost(reason: str) -> None:
            # Faust does not recover in process from changelogs that vanished under it, and
            # any producer of this process may still hold writes for the old topics: exit at
            # once, dropping them, for a clean restart (BrokerWatch.claim recreates the
            # topics and replaces those that such writes made unreadable).
            log.critical(
                "%s; exiting with code %d so that the supervisor restarts the worker, which "
                "recreates the topics (detection state that was in memory is lost: series "
                "go through their warm-up again)",
                reason,
                EXIT_BROKER_LOST,
            )
            print(
                f"apiwatch: {reason} (a restart without persistence); "
                f"exiting with code {EXIT_BROKER_LOST} for a clean restart",
                file=sys.stderr,
                flush=True,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(EXIT_BROKER_LOST)

        watch = BrokerWatch(
            settings,
            bootstrap,
            specs,
            metrics,
            health,
            more_specs=lambda: faust_topic_specs(app, settings),
            on_lost=on_lost,
        )

        # Before Faust starts (it restores its tables from the changelogs at once): the
        # broker's epoch, with the topics checked and repaired if no worker of this app
        # started on the broker as it is now (BrokerWatch.claim).
        asyncio.run(watch.claim([*specs, *faust_topic_specs(app, settings)]))

        async def watch_broker() -> None:
            await watch.start()
            await watch.run(stop)

        app.task(watch_broker)

        extra = _extra_roles()
        for role in sorted(options.roles & set(extra)):
            app.task(_stage_task(role, extra[role], settings, stop, health))

        async def _shutdown(sender: Any, *, signal: Any = None, **kwargs: Any) -> None:
            stop.set()
            await endpoint.stop()

        app.on_before_shutdown.connect(_shutdown)  # type: ignore[arg-type]

        worker = faust.worker.Worker(
            app, loglevel=options.loglevel, quiet=True, override_logging=True
        )
        worker.execute_from_commandline()
    finally:
        if broker is not None:
            broker.stop()
