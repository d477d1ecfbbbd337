"""Core commands: schema export and the embedded broker."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from apiwatch.models.schemas import SCHEMAS, json_schema
from apiwatch.settings import Settings, load_settings
from apiwatch.streams.cli.errors import UserError, user_errors

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file merged over the defaults.", show_default=False),
]


def settings_from(config: Path | None) -> Settings:
    with user_errors():
        return load_settings(config)


def schema(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCHEMAS)}.")],
) -> None:
    """Print the JSON Schema of a message contract."""
    if name not in SCHEMAS:
        raise UserError(f"unknown schema {name!r}; choose one of: {', '.join(SCHEMAS)}")
    typer.echo(json.dumps(json_schema(name), indent=2))


def broker(
    port: Annotated[int, typer.Option(help="Loopback port; 0 picks a free one.")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) in the foreground until Ctrl-C."""
    from apiwatch.streams.broker import BrokerError, EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with EmbeddedBroker(port=port or None) as b:
            typer.echo(f"embedded Kafka broker on {b.bootstrap_servers} (Ctrl-C stops it)")
            while not stop.wait(0.5):
                if not b.running:
                    raise UserError("the broker exited unexpectedly")
    except BrokerError as exc:
        raise UserError(str(exc)) from None


def register(app: typer.Typer) -> None:
    app.command()(schema)
    app.command()(broker)
