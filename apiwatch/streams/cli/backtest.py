"""``apiwatch backtest``: run the stream's detectors offline over a file.

Two forms: a metric series (``SERIES.csv`` with ``timestamp,value``) scored
row by row into ``--output``, or an event file (``--events`` JSON lines of
RUM events and synthetic results) replayed into the alerts the stream would
have sent (``--alerts-out``, CloudEvents JSON lines): the detection alerts and
the access-pattern alerts (brute force, stuffing, enumeration...) in one file.
Progress goes to stderr on long inputs; a bad file ends in one line naming the
line that is wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from apiwatch.models.access.replay import AccessReplay
from apiwatch.models.backtest import (
    BadLine,
    EventReplay,
    backtest_series,
    max_event_time_s,
    read_series,
)
from apiwatch.settings import Settings
from apiwatch.streams.cli.core import ConfigOption, settings_from
from apiwatch.streams.cli.errors import UserError

#: Lines validated per batch when replaying an event file.
CHUNK_LINES = 50_000
#: Inputs smaller than this finish too fast for a progress bar to help.
PROGRESS_MIN_BYTES = 5_000_000


@contextmanager
def _progress(label: str, total: int, enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        progress.add_task(label, total=total)
        yield progress


def _series(path: Path, output: Path, settings: Settings) -> None:
    try:
        with path.open(encoding="utf-8") as fh:
            stamps, times, values = read_series(fh)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    with _progress("scoring", len(values), len(values) > 20_000) as progress:
        result = backtest_series(
            times,
            values,
            settings.detection,
            progress=(lambda n: progress.advance(TaskID(0), n)) if progress else None,
        )
    try:
        with output.open("w", encoding="utf-8") as out:
            out.write("timestamp,value,anomaly_score,alert\n")
            for stamp, value, score, alert in zip(
                stamps, values, result.scores.tolist(), result.alerts.tolist(), strict=True
            ):
                out.write(f"{stamp},{value!r},{score:.6f},{alert}\n")
    except OSError as exc:
        raise UserError(f"{output}: {exc.strerror or exc}") from None
    typer.echo(
        f"{len(values)} rows at a {result.interval_s:g} s interval, "
        f"{int(result.alerts.sum())} alerts -> {output}",
        err=True,
    )


def _chunks(fh: BinaryIO) -> Iterator[tuple[int, list[bytes]]]:
    first = 1
    while True:
        lines = fh.readlines(CHUNK_LINES * 400)
        if not lines:
            return
        yield first, lines
        first += len(lines)


def _events(path: Path, alerts_out: Path, settings: Settings, access: bool) -> None:
    ingest = settings.ingest
    replay = EventReplay(
        settings.detection,
        ingest.bucket_s,
        ingest.allowed_lateness_s,
        ingest.max_future_skew_s,
        ingest.sample_ids_per_bucket,
        access=AccessReplay(settings.access) if access and settings.access.enabled else None,
    )
    source = settings.app.source.rstrip("/") + "/backtest"
    started = time.perf_counter()
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            latest = max_event_time_s(fh)
        now_s = latest if latest is not None else time.time()
        with (
            path.open("rb") as fh,
            alerts_out.open("wb") as out,
            _progress("replaying", size, size > PROGRESS_MIN_BYTES) as progress,
        ):
            for first, lines in _chunks(fh):
                for emission in replay.feed(lines, first, now_s):
                    out.write(orjson.dumps(emission.event(source).model_dump(mode="json")) + b"\n")
                if progress is not None:
                    progress.advance(TaskID(0), sum(len(line) for line in lines))
            for emission in replay.finish():
                out.write(orjson.dumps(emission.event(source).model_dump(mode="json")) + b"\n")
    except BadLine as exc:
        raise UserError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UserError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    stats = replay.stats
    typer.echo(
        f"{stats.rum_events} RUM events and {stats.synthetic_runs} synthetic runs "
        f"({stats.late_events} late) in {time.perf_counter() - started:.1f} s: "
        f"{stats.buckets} buckets, {stats.alerts} alert events "
        f"and {stats.access_alerts} access alert events -> {alerts_out}",
        err=True,
    )


def backtest(
    series: Annotated[
        Path | None, typer.Argument(help="CSV with header timestamp,value.", show_default=False)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="CSV to write to: timestamp, value, anomaly_score (0..1; each incident "
            "rated once, on the row after its score peaks) and alert (1 where an alert "
            "fires).",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="JSON lines of RUM events and synthetic results."),
    ] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="JSON lines of alert CloudEvents to write.")
    ] = None,
    access: Annotated[
        bool,
        typer.Option(
            "--access/--no-access",
            help="Also replay the access-pattern detectors (per-client state: several times "
            "slower than the bucket detectors alone).",
        ),
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Run the detectors offline: a metric series CSV, or an event file."""
    settings = settings_from(config)
    if series is not None and events is None:
        if output is None:
            raise UserError("a series backtest needs --output OUT.csv")
        _series(series, output, settings)
    elif events is not None and series is None:
        if alerts_out is None:
            raise UserError("an event backtest needs --alerts-out ALERTS.jsonl")
        _events(events, alerts_out, settings, access)
    else:
        raise UserError(
            "give either SERIES.csv --output OUT.csv, or --events FILE --alerts-out FILE"
        )


def register(app: typer.Typer) -> None:
    app.command()(backtest)
