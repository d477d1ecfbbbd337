"""``apiwatch backtest --events`` writes the access alerts the stream would send, beside the others."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from apiwatch.models.simulation import Scenario, Simulator
from tests.detection.test_backtest_cli import invoke

from .helpers import T0

SCENARIO = Scenario.model_validate(
    {
        "seed": 3,
        "duration_s": 900,
        "clients": 200,
        "services": [
            {"name": "shop", "rate_rps": 8, "routes": [{"method": "GET", "route": "/items/{id}"}]},
            {"name": "auth", "rate_rps": 2, "routes": [
                {"method": "POST", "route": "/login", "client_error_rate": 0.05}]},
        ],
        "incidents": [
            {"kind": "brute_force", "target": {"service": "auth", "method": "POST",
             "route": "/login"}, "start_s": 300, "duration_s": 300, "magnitude": 0.5},
        ],
    }
)  # fmt: skip


def test_events_backtest_writes_the_access_alert_of_a_simulated_brute_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = Simulator(SCENARIO, T0)
    rum, _ = sim.generate(0, int(SCENARIO.duration_s * 1000))
    src, out = tmp_path / "events.jsonl", tmp_path / "alerts.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in rum))
    result = invoke(["backtest", "--events", str(src), "--alerts-out", str(out)], capsys)
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    access = [e for e in events if e["data"]["kind"] == "brute_force"]
    attacker = sim.truth()[0].labels["client"]
    firing = [e for e in access if e["type"] == "io.apiwatch.alert.firing"]
    assert firing and firing[0]["specversion"] == "1.0"
    assert any(e["data"]["labels"]["client"] == attacker for e in firing)
    assert all(e["subject"] == e["data"]["fingerprint"] for e in firing)
    assert all(e["data"]["labels"]["environment"] == "production" for e in firing)
    assert all(e["data"]["evidence"]["sample_event_ids"] for e in firing)
    assert "access alert events" in result.output
    # Resolved once the attack stops: one firing and one resolved per client and incident.
    assert len([e for e in access if e["type"] == "io.apiwatch.alert.resolved"]) == len(firing)


def test_events_backtest_without_access_writes_no_access_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rum, _ = Simulator(SCENARIO, T0).generate(0, int(SCENARIO.duration_s * 1000))
    src, out = tmp_path / "events.jsonl", tmp_path / "alerts.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in rum))
    args = ["backtest", "--events", str(src), "--alerts-out", str(out), "--no-access"]
    result = invoke(args, capsys)
    assert result.exit_code == 0, result.output
    kinds = {orjson.loads(line)["data"]["kind"] for line in out.read_bytes().splitlines()}
    assert "brute_force" not in kinds
    assert "and 0 access alert events" in result.output
