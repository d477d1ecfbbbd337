"""Stream commands: run the worker, follow the alerts topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

import typer

from apiwatch.models.alerts import AlertEvent
from apiwatch.streams.cli.core import ConfigOption, settings_from
from apiwatch.streams.cli.errors import UserError

alerts_app = typer.Typer(help="Read the alerts topic.", no_args_is_help=True)


def worker(
    config: ConfigOption = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help="Run only these roles (repeatable). Default: all."),
    ] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (overrides config).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(help="Port for /metrics and /health; 0 = any.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the stream processors (ingest, detect, …) until SIGTERM or Ctrl-C."""
    from apiwatch.streams.worker import (
        WorkerOptions,
        all_roles,
        default_roles,
        run_worker,
        with_bootstrap,
    )

    settings = settings_from(config)
    if bootstrap_servers:
        settings = with_bootstrap(settings, bootstrap_servers)
    if http_port is not None:
        if not 0 <= http_port <= 65535:
            raise UserError(f"--http-port {http_port} is not a port number")
        settings = settings.model_copy(
            update={"app": settings.app.model_copy(update={"http_port": http_port})}
        )
    if loglevel.lower() not in ("debug", "info", "warning", "error"):
        raise UserError(f"--loglevel {loglevel!r}: choose debug, info, warning or error")
    roles = set(role) if role else default_roles(settings)
    unknown = roles - set(all_roles())
    if unknown:
        raise UserError(
            f"unknown role {sorted(unknown)[0]!r}; choose from {', '.join(all_roles())}"
        )
    logging.basicConfig(level=loglevel.upper())
    from apiwatch.streams.broker import BrokerError
    from apiwatch.streams.kafka import KafkaUnavailable

    try:
        run_worker(settings, WorkerOptions(roles=roles, loglevel=loglevel.lower()))
    except (KafkaUnavailable, BrokerError) as exc:  # retried with backoff already
        raise UserError(str(exc), exit_code=1) from None


@alerts_app.command("tail")
def alerts_tail(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One CloudEvent JSON per line.")] = False,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest alert.")] = False,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    limit: Annotated[int, typer.Option(help="Stop after this many alerts; 0 = follow.")] = 0,
) -> None:
    """Follow the alerts topic and print each alert as it arrives."""
    settings = settings_from(config)
    bootstrap = bootstrap_servers or settings.kafka.bootstrap_servers
    if not bootstrap:
        raise UserError("no Kafka to read from: set --bootstrap-servers or kafka.bootstrap_servers")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, bootstrap, as_json, from_beginning, limit))


async def _tail(
    settings: object, bootstrap: str, as_json: bool, from_beginning: bool, limit: int
) -> None:
    from aiokafka import TopicPartition
    from pydantic import ValidationError
    from rich.console import Console

    from apiwatch.settings import Settings
    from apiwatch.streams.kafka import make_consumer

    assert isinstance(settings, Settings)
    console = Console(highlight=False)
    consumer = make_consumer(settings.kafka, group_id=None, bootstrap=bootstrap)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(settings.topics.alerts) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(settings.topics.alerts) or set()
        if not parts:
            raise UserError(f"topic {settings.topics.alerts!r} does not exist at {bootstrap}")
        tps = [TopicPartition(settings.topics.alerts, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        seen = 0
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    if as_json:
                        print(rec.value.decode(errors="replace"), flush=True)
                    else:
                        try:
                            ev = AlertEvent.model_validate_json(rec.value)
                        except ValidationError:
                            console.print(f"[red]unreadable alert at offset {rec.offset}[/red]")
                            continue
                        console.print(format_alert(ev))
                    seen += 1
                    if limit and seen >= limit:
                        return
    finally:
        await consumer.stop()


def format_alert(ev: AlertEvent) -> str:
    a = ev.data
    colour = {"firing": "red", "updated": "yellow", "resolved": "green"}[ev.transition]
    when = ev.time.strftime("%H:%M:%S")
    return f"[{colour}]{when} {ev.transition.upper():8}[/{colour}] [bold]{a.kind.value}[/bold] {a.severity.value}: {a.summary}"


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(alerts_app, name="alerts")
