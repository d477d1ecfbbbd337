"""Simulation commands: ``simulate`` publishes scenario traffic, ``demo`` runs everything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from apiwatch.models.simulation import Scenario
from apiwatch.streams.cli.core import ConfigOption, settings_from
from apiwatch.streams.cli.errors import UserError
from apiwatch.streams.simulate import ScenarioError, SimulationRun, load_scenario

ScenarioOption = Annotated[
    Path | None,
    typer.Option("--scenario", "-s", help="Scenario YAML; default: the built-in demo scenario."),
]


def _scenario(path: Path | None) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None


def simulate(
    config: ConfigOption = None,
    scenario: ScenarioOption = None,
    speed: Annotated[
        float, typer.Option(help="Event time runs this many times faster than real time.")
    ] = 1.0,
    truth_out: Annotated[
        Path | None, typer.Option(help="Write the injected incidents (ground truth) here as JSON.")
    ] = None,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
) -> None:
    """Publish realistic RUM and synthetic traffic with injected incidents."""
    if speed <= 0:
        raise UserError(f"--speed must be positive, got {speed}")
    settings = settings_from(config)
    sc = _scenario(scenario)
    bootstrap = bootstrap_servers or settings.kafka.bootstrap_servers
    if not bootstrap:
        raise UserError(
            "no Kafka to publish to: set --bootstrap-servers or kafka.bootstrap_servers"
        )
    from apiwatch.streams.worker import with_bootstrap

    run = SimulationRun(with_bootstrap(settings, bootstrap), sc, speed=speed)
    if truth_out is not None:
        run.write_truth(truth_out)
    console = Console(stderr=True)
    console.print(f"simulating {sc.duration_s:.0f} s of traffic at {speed:g}x to {bootstrap}")
    try:
        progress = asyncio.run(run.run())
    except KeyboardInterrupt:
        raise UserError("interrupted", exit_code=130) from None
    console.print(
        f"sent {progress.rum:,} RUM events, {progress.synthetic:,} synthetic results, {progress.malformed} malformed"
    )


def demo(
    config: ConfigOption = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds.")] = 90.0,
    scenario: ScenarioOption = None,
    truth_out: Annotated[
        Path | None, typer.Option(help="Write the injected incidents here as JSON.")
    ] = None,
) -> None:
    """Embedded broker + worker + simulator, with a live view of rates and alerts."""
    from apiwatch.streams.demo import run_demo

    if duration < 20:
        raise UserError(f"--duration {duration:g}: the demo needs at least 20 seconds")
    settings = settings_from(config)
    sc = _scenario(scenario)
    console = Console()
    summary, ok = asyncio.run(run_demo(settings, sc, duration, console, truth_out))
    print(json.dumps(summary), flush=True)
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(demo)
