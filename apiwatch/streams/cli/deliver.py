"""Delivery commands: run the stage, manage silences, verify webhooks, read the log."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from apiwatch.models.delivery.notification import LogEntry, Outcome
from apiwatch.models.delivery.silence import Silence, SilenceRequest
from apiwatch.settings import Settings
from apiwatch.streams.cli.core import ConfigOption, settings_from
from apiwatch.streams.cli.errors import UserError, user_errors

T = TypeVar("T")

silence_app = typer.Typer(help="Create, list and expire silences.", no_args_is_help=True)
webhook_app = typer.Typer(help="Tools for webhook subscribers.", no_args_is_help=True)
notifications_app = typer.Typer(help="The notifications log.", no_args_is_help=True)

BootstrapOption = Annotated[
    str | None, typer.Option("--bootstrap-servers", help="Kafka bootstrap servers.")
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1d`` or ``1w``.

    >>> parse_duration("2h"), parse_duration("90"), parse_duration("1.5m")
    (7200.0, 90.0, 90.0)
    """
    found = _DURATION.match(text)
    if found is None:
        raise UserError(f"bad duration {text!r}: use a number with s, m, h, d or w (e.g. 2h)")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _kafka_settings(config: Path | None, bootstrap: str | None) -> Settings:
    from apiwatch.streams.worker import with_bootstrap

    settings = settings_from(config)
    if bootstrap:
        settings = with_bootstrap(settings, bootstrap)
    if not settings.kafka.bootstrap_servers:
        raise UserError(
            "no Kafka to talk to: set --bootstrap-servers or kafka.bootstrap_servers "
            "(apiwatch worker starts an embedded broker for the whole pipeline)"
        )
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from apiwatch.streams.kafka import KafkaUnavailable

    try:
        return asyncio.run(coro)
    except KafkaUnavailable as exc:
        raise UserError(str(exc)) from None
    except TimeoutError as exc:
        raise UserError(f"Kafka did not answer in time: {exc}") from None


def deliver(
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the delivery stage (route, group, mute, send, retry) until SIGTERM or Ctrl-C."""
    if loglevel.lower() not in ("debug", "info", "warning", "error"):
        raise UserError(f"--loglevel {loglevel!r}: choose debug, info, warning or error")
    settings = _kafka_settings(config, bootstrap_servers)
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _run(_deliver(settings))


async def _deliver(settings: Settings) -> None:
    from apiwatch.streams.deliver import run_delivery

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_delivery(settings, stop)


@silence_app.command("add")
def silence_add(
    matchers: Annotated[list[str], typer.Argument(help="e.g. service=shop 'route=~/users/.*'")],
    author: Annotated[str, typer.Option("--author", "-a", help="Who silences.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why.")],
    duration: Annotated[str, typer.Option("--duration", "-d", help="How long, e.g. 2h.")] = "1h",
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Create a silence starting now; prints its id."""
    settings = _kafka_settings(config, bootstrap_servers)
    with user_errors("silence"):
        request = SilenceRequest.model_validate(
            {
                "matchers": matchers,
                "duration_s": parse_duration(duration),
                "created_by": author,
                "comment": comment,
            }
        )
    silence = request.to_silence(datetime.now(tz=UTC))
    _run(_put(settings, silence))
    typer.echo(silence.id)


async def _put(settings: Settings, silence: Silence) -> None:
    from apiwatch.streams.deliver.silences import open_silences

    async with open_silences(settings) as store:
        await store.put(silence)


async def _all_silences(settings: Settings) -> list[Silence]:
    from apiwatch.streams.deliver.silences import open_silences

    async with open_silences(settings) as store:
        return store.silences.all()


@silence_app.command("list")
def silence_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """List pending and active silences (and expired ones with --all)."""
    settings = _kafka_settings(config, bootstrap_servers)
    silences = _run(_all_silences(settings))
    now = datetime.now(tz=UTC)
    for s in silences:
        state = s.state(now)
        if state == "expired" and not show_all:
            continue
        if as_json:
            typer.echo(json.dumps({**s.model_dump(mode="json"), "state": state}))
        else:
            matchers = " ".join(str(m) for m in s.matchers)
            typer.echo(
                f"{s.id}  {state:8} until {s.ends_at:%Y-%m-%d %H:%M:%S}Z  {matchers}  "
                f"by {s.created_by}: {s.comment}"
            )


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The id `silence add` printed.")],
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """End a silence now."""
    settings = _kafka_settings(config, bootstrap_servers)
    _run(_expire(settings, silence_id))
    typer.echo(f"expired {silence_id}")


async def _expire(settings: Settings, silence_id: str) -> None:
    from apiwatch.streams.deliver.silences import open_silences

    async with open_silences(settings) as store:
        found = store.silences.get(silence_id)
        if found is None:
            raise UserError(f"no silence with id {silence_id!r}")
        await store.put(found.expire(datetime.now(tz=UTC)))


@webhook_app.command("verify")
def webhook_verify(
    body: Annotated[Path, typer.Argument(help="File with the raw request body; - for stdin.")],
    webhook_id: Annotated[str, typer.Option("--id", help="The webhook-id header.")],
    timestamp: Annotated[str, typer.Option("--timestamp", help="The webhook-timestamp header.")],
    signature: Annotated[str, typer.Option("--signature", help="The webhook-signature header.")],
    secret: Annotated[
        str,
        typer.Option(
            envvar="APIWATCH_WEBHOOK_SECRET",
            help="Signing secret (whsec_...); better from APIWATCH_WEBHOOK_SECRET than a flag.",
            show_default=False,
        ),
    ],
) -> None:
    """Check a received webhook's Standard Webhooks signature (exit 0 when it verifies)."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    raw = sys.stdin.buffer.read() if str(body) == "-" else _read(body)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
    }
    try:
        Webhook(secret).verify(raw, headers, json_parse=False)
    except WebhookVerificationError as exc:
        raise UserError(f"signature does not verify: {exc}", exit_code=1) from None
    except (ValueError, TypeError) as exc:  # a malformed secret or signature header
        raise UserError(f"cannot verify: {type(exc).__name__}", exit_code=1) from None
    typer.echo("signature valid")


def _read(path: Path) -> bytes:
    with user_errors("body"):
        return path.read_bytes()


@notifications_app.command("log")
def notifications_log(
    receiver: Annotated[str | None, typer.Option(help="Only this receiver.")] = None,
    fingerprint: Annotated[
        str | None, typer.Option(help="Only notifications about this alert.")
    ] = None,
    outcome: Annotated[Outcome | None, typer.Option(help="Only this outcome.")] = None,
    limit: Annotated[int, typer.Option(help="Show the last N entries; 0 = all.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Show what was sent where, when, and how it went."""
    from apiwatch.streams.deliver.notify_log import read_log

    settings = _kafka_settings(config, bootstrap_servers)

    def keep(entry: LogEntry) -> bool:
        return (
            (receiver is None or entry.receiver == receiver)
            and (fingerprint is None or fingerprint in entry.fingerprints)
            and (outcome is None or entry.outcome is outcome)
        )

    entries = _run(read_log(settings, keep))
    for entry in entries[-limit:] if limit else entries:
        typer.echo(entry.model_dump_json() if as_json else format_entry(entry))


def format_entry(entry: LogEntry) -> str:
    status = f" HTTP {entry.status_code}" if entry.status_code else ""
    error = f"  {entry.error}" if entry.error else ""
    return (
        f"{entry.at:%Y-%m-%d %H:%M:%S}Z  {entry.outcome.value:15} {entry.receiver} "
        f"({entry.receiver_type}) attempt {entry.attempt}{status}  {entry.status} "
        f"{len(entry.fingerprints)} alert(s)  id {entry.notification_id}{error}"
    )


def register(app: typer.Typer) -> None:
    app.command()(deliver)
    app.add_typer(silence_app, name="silence")
    app.add_typer(webhook_app, name="webhook")
    app.add_typer(notifications_app, name="notifications")
