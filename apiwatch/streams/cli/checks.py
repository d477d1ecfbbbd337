"""``apiwatch checks``: validate, schema, once (one pass, for CI) and run (the long-running runner)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from apiwatch.models.checks.definition import CheckDefinition
from apiwatch.models.checks.loading import CheckFileError
from apiwatch.models.checks.variables import missing_environment
from apiwatch.settings import Settings
from apiwatch.streams.cli.core import ConfigOption, settings_from
from apiwatch.streams.cli.errors import UserError

checks_app = typer.Typer(
    name="checks",
    help="Synthetic checks: multi-step HTTP flows defined in YAML, results to Kafka.",
    no_args_is_help=True,
)

DirArgument = Annotated[
    Path | None,
    typer.Argument(
        help="Folder of check YAML files (default: checks.directory).", show_default=False
    ),
]
LocationOption = Annotated[
    str | None,
    typer.Option(
        "--location",
        "-l",
        help="Label of this runner (default: checks.location).",
        show_default=False,
    ),
]


def _load(settings: Settings, directory: Path | None) -> list[CheckDefinition]:
    from apiwatch.streams.checks.files import load_checks

    try:
        return load_checks(directory or settings.checks.directory)
    except CheckFileError as exc:
        raise UserError(str(exc)) from None


def _require_environment(checks: Sequence[CheckDefinition]) -> None:
    missing = missing_environment(checks, os.environ)
    if missing:
        raise UserError(f"environment variables not set: {', '.join(missing)}")


def _require_kafka(settings: Settings) -> None:
    if settings.embedded:
        raise UserError(
            "no Kafka to publish to: set kafka.bootstrap_servers "
            "(APIWATCH_KAFKA__BOOTSTRAP_SERVERS), or pass --no-publish"
        )


def _quiet_http_logs() -> None:
    # httpx logs every request URL at INFO, and URLs may carry secret variables.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def validate(directory: DirArgument = None, config: ConfigOption = None) -> None:
    """Check every check file; print how many are valid, or the first error."""
    settings = settings_from(config)
    checks = _load(settings, directory)
    typer.echo(f"{len(checks)} checks valid in {directory or settings.checks.directory}")


def schema() -> None:
    """Print the JSON Schema of a check file."""
    body = CheckDefinition.model_json_schema(by_alias=True)
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    body["$id"] = "https://apiwatch.dev/schemas/check.json"
    typer.echo(json.dumps(body, indent=2))


def once(
    directory: DirArgument = None,
    location: LocationOption = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Run only this check id (repeatable).")
    ] = None,
    no_publish: Annotated[
        bool, typer.Option("--no-publish", help="Do not send results to Kafka.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each result message as JSON.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run every check once; exit 1 if any failed (for CI pipelines and debugging)."""
    settings = settings_from(config)
    checks = [c for c in _load(settings, directory) if c.enabled and (not check or c.id in check)]
    if check and not checks:
        raise UserError(f"no enabled check with id {', '.join(check)}")
    _require_environment(checks)
    if not no_publish:
        _require_kafka(settings)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_http_logs()
    logging.getLogger("apiwatch.streams.checks.runner").setLevel(logging.ERROR)
    failed, unpublished = asyncio.run(
        _once(settings, checks, location or settings.checks.location, not no_publish, as_json)
    )
    if unpublished:
        raise UserError(
            f"{unpublished} results could not be published to {settings.topics.synthetic} "
            f"within {settings.checks.publish_timeout_s:g} s",
            exit_code=3,
        )
    if failed:
        raise UserError(f"{failed} of {len(checks)} checks failed", exit_code=1)


async def _once(
    settings: Settings, checks: list[CheckDefinition], location: str, publish: bool, as_json: bool
) -> tuple[int, int]:
    from apiwatch.streams.checks.publisher import ResultPublisher
    from apiwatch.streams.checks.runner import CheckRunner, summary

    runner = CheckRunner(location, os.environ, settings.checks.user_agent)
    gate = asyncio.Semaphore(settings.checks.max_concurrency)
    publisher = ResultPublisher(
        settings.kafka, settings.topics.synthetic, settings.checks.max_pending
    )
    failed = 0

    async def one(check: CheckDefinition) -> None:
        nonlocal failed
        async with gate:
            done = await runner.run(check)
        typer.echo(done.to_json().decode() if as_json else summary(done.result))
        failed += done.result.failed
        publisher.submit(check.id, done.to_json())

    await asyncio.gather(*(one(c) for c in checks))
    if not publish:
        return failed, 0
    try:
        return failed, await publisher.drain(settings.checks.publish_timeout_s)
    finally:
        await publisher.close()


def run(
    directory: DirArgument = None,
    location: LocationOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the checks on their schedules until Ctrl-C or SIGTERM, publishing every result."""
    settings = settings_from(config)
    checks = _load(settings, directory)
    _require_environment(checks)
    _require_kafka(settings)
    logging.basicConfig(
        level=settings.app.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _quiet_http_logs()
    lost = asyncio.run(_run(settings, checks, location or settings.checks.location))
    if lost:
        raise UserError(f"stopped with {lost} results not published", exit_code=3)


async def _run(settings: Settings, checks: list[CheckDefinition], location: str) -> int:
    from apiwatch.streams.checks.publisher import ResultPublisher
    from apiwatch.streams.checks.runner import CheckRunner
    from apiwatch.streams.checks.schedule import run_schedule

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = CheckRunner(location, os.environ, settings.checks.user_agent)
    publisher = ResultPublisher(
        settings.kafka, settings.topics.synthetic, settings.checks.max_pending
    )
    try:
        await run_schedule(checks, runner, publisher, stop, settings.checks.max_concurrency)
        return await publisher.drain(settings.checks.publish_timeout_s)
    finally:
        await publisher.close()


def register(app: typer.Typer) -> None:
    checks_app.command()(validate)
    checks_app.command()(schema)
    checks_app.command()(once)
    checks_app.command()(run)
    app.add_typer(checks_app)
