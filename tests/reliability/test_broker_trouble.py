"""Broker trouble at start: unreachable (retry with backoff, then one clear line), topics missing.

A broker restart that loses its topics (the embedded one keeps them in memory) is
not exercised here; RELIABILITY.md says what it costs.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apiwatch.streams.broker import EmbeddedBroker, free_port
from apiwatch.streams.kafka import KafkaUnavailable, ensure_topics, topic_specs
from apiwatch.streams.worker import worker_env
from tests.reliability.harness import run_settings

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_worker_waits_for_an_unreachable_broker_then_creates_its_topics(tmp_path: Path) -> None:
    port = free_port()
    settings = run_settings(f"127.0.0.1:{port}", "down")
    http = free_port()
    log_path = tmp_path / "worker.log"
    cmd = [sys.executable, "-m", "apiwatch", "worker", "--role", "ingest", "--role", "detect"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=worker_env(settings, tmp_path / "state", http),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    broker = EmbeddedBroker(port=port)
    try:
        # No broker: the worker says so, retries with growing delays, and does not die.
        deadline = time.monotonic() + 30
        delays: list[float] = []
        while time.monotonic() < deadline and len(delays) < 3:
            text = log_path.read_text(errors="replace")
            delays = [float(d) for d in re.findall(r"retrying in ([\d.]+) s", text)]
            assert proc.poll() is None, text
            time.sleep(0.2)
        text = log_path.read_text(errors="replace")
        assert f"Kafka not reachable at 127.0.0.1:{port}" in text, text
        assert delays[:3] == sorted(delays[:3]) and delays[2] > delays[0], delays
        assert "Traceback" not in text
        # The broker comes up, empty: the worker creates every topic it needs and runs.
        broker.start()
        from tests.kafka_helpers import WorkerProcess

        probe = WorkerProcess(settings, tmp_path)
        probe.port, probe.proc, probe.log_path = http, proc, log_path
        probe.wait_healthy(timeout=60)
        from aiokafka.admin import AIOKafkaAdminClient

        async def topics() -> set[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
            await admin.start()
            try:
                return set(await admin.list_topics())
            finally:
                await admin.close()

        have = asyncio.run(topics())
        assert {s.name for s in topic_specs(settings)} <= have
        assert f"{settings.app.app_id}-monitors-changelog" in have
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()


async def test_topic_creation_gives_up_with_one_clear_error() -> None:
    settings = run_settings(f"127.0.0.1:{free_port()}", "gone")
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=r"no Kafka broker answered at 127\.0\.0\.1:\d+"):
        await ensure_topics(settings.kafka, topic_specs(settings), attempts=3)
    assert time.monotonic() - started < 10


def test_cli_reports_an_unreachable_broker_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from apiwatch.streams import worker
    from apiwatch.streams.cli import main

    def unavailable(*_: object) -> None:
        raise KafkaUnavailable("no Kafka broker answered at 127.0.0.1:1 after 30 attempts: x")

    monkeypatch.setattr(worker, "run_worker", unavailable)
    monkeypatch.setattr(sys, "argv", ["apiwatch", "worker", "--bootstrap-servers", "127.0.0.1:1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["apiwatch: no Kafka broker answered at 127.0.0.1:1 after 30 attempts: x"]
