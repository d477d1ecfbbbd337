"""``apiwatch backtest`` on small files, good and bad."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from apiwatch.streams.cli import main
from tests.detection.helpers import T0


@dataclass
class Outcome:
    exit_code: int
    output: str


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """Run the CLI entry point as the console script does, exit code and stderr included."""
    old = sys.argv
    sys.argv = ["apiwatch", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return Outcome(code, captured.out + captured.err)


def write_series(path: Path, n: int, spike_at: int) -> None:
    start = datetime(2014, 2, 14, tzinfo=UTC)
    rows = ["timestamp,value"]
    for i in range(n):
        v = 10.0 + (i % 7) * 0.1 + (50.0 if i == spike_at else 0.0)
        rows.append(f"{start + timedelta(minutes=5 * i):%Y-%m-%d %H:%M:%S},{v}")
    path.write_text("\n".join(rows) + "\n")


def test_series_backtest_scores_every_row_causally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "s.csv", tmp_path / "out.csv"
    write_series(src, 400, 350)
    result = invoke(["backtest", str(src), "--output", str(out)], capsys)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 400 and list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    assert rows[350]["alert"] == "1"  # flagged at once; the score is reported after its peak
    assert float(rows[351]["anomaly_score"]) > 0.5 > float(rows[350]["anomaly_score"])
    # Causal: truncating the file after the spike leaves every earlier score unchanged.
    write_series(src, 351, 350)
    invoke(["backtest", str(src), "--output", str(tmp_path / "cut.csv")], capsys)
    cut = list(csv.DictReader((tmp_path / "cut.csv").open()))
    assert [r["anomaly_score"] for r in cut] == [r["anomaly_score"] for r in rows[:351]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,v\n1,2\n", "line 1: expected the header"),
        ("timestamp,value\n2014-02-14 00:00:00,abc\n", "line 2: bad value"),
        ("timestamp,value\nyesterday,1\n", "line 2: bad timestamp"),
        ("timestamp,value\n", "no data rows"),
    ],
)
def test_bad_series_file_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    result = invoke(["backtest", str(src), "--output", str(tmp_path / "o.csv")], capsys)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def rum_line(i: int, status: int = 200) -> bytes:
    return orjson.dumps(
        {
            "timestamp": T0 + i * 200,
            "service": "shop",
            "method": "GET",
            "path": f"/items/{i % 50}",
            "status": status,
            "duration_ms": 20 + i % 10,
            "client_ip": "10.0.0.1",
        }
    )


def test_events_backtest_writes_cloudevents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [rum_line(i) for i in range(12_000)]
    lines += [rum_line(12_000 + i, 503 if i % 2 else 200) for i in range(600)]
    lines[100], lines[101] = lines[101], lines[100]  # slightly out of order
    src, out = tmp_path / "events.jsonl", tmp_path / "alerts.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    result = invoke(["backtest", "--events", str(src), "--alerts-out", str(out)], capsys)
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert events and events[0]["specversion"] == "1.0"
    assert events[0]["type"] == "io.apiwatch.alert.firing"
    assert events[0]["data"]["kind"] == "error_surge"


def test_events_backtest_names_the_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_bytes(rum_line(0) + b"\n" + rum_line(1) + b"\n{not json\n")
    result = invoke(
        ["backtest", "--events", str(src), "--alerts-out", str(tmp_path / "a.jsonl")], capsys
    )
    assert result.exit_code == 2
    assert "line 3" in result.output and len(result.output.strip().splitlines()) == 1
