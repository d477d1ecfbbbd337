"""The ``apiwatch`` command line.

Each command group lives in its own module and is registered here, one line
each. Errors a user can fix (a bad flag, a bad file, an invalid config, no
broker) end in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from apiwatch.streams.cli import backtest, checks, core, deliver, sim, stream
from apiwatch.streams.cli.errors import UserError

app = typer.Typer(
    name="apiwatch",
    help="Event-streaming anomaly detection for APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Registry of command groups: one line per module.
core.register(app)
checks.register(app)
stream.register(app)
sim.register(app)
deliver.register(app)
backtest.register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as exc:
        typer.echo(f"apiwatch: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("apiwatch: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click's usage errors and aborts come through here too
        import click

        # Typer >= 0.20 raises its own vendored copies of click's exceptions.
        from typer._click.exceptions import ClickException as TyperClickException

        if isinstance(exc, click.exceptions.Exit | typer.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException | TyperClickException):
            if exc.format_message():  # empty after "no arguments: help shown"
                typer.echo(f"apiwatch: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            typer.echo("apiwatch: aborted", err=True)
            sys.exit(130)
        raise
