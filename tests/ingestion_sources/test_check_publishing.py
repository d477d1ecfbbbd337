"""Check results through the real broker, the CLI end to end, and results kept while Kafka is away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apiwatch.models.events import SyntheticResult, SyntheticStatus
from apiwatch.settings import Settings
from apiwatch.streams.broker import EmbeddedBroker, free_port
from apiwatch.streams.checks.publisher import ResultPublisher
from apiwatch.streams.kafka import ensure_topics, topic_specs

from .bank import PASSWORD, serve_bank
from .helpers import await_until, read_topic

pytestmark = pytest.mark.integration

PASSING = """
id: login
name: Log in
variables:
  base: {env: BANK_URL}
  password: {env: BANK_PASSWORD, secret: true}
steps:
  - name: log in
    method: POST
    url: "{{ base }}/login"
    json: {user: alice, password: "{{ password }}"}
    assert: [{status: 200}]
"""
FAILING = """
id: balance
name: Balance without a token
variables:
  base: {env: BANK_URL}
steps:
  - name: read balance
    url: "{{ base }}/accounts/1/balance"
    assert: [{status: 200}]
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The package has no __main__; call main() the way the console script does.
    code = "import sys; from apiwatch.streams.cli import main; sys.argv[0] = 'apiwatch'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def kafka_env(settings: Settings) -> dict[str, str]:
    return {
        "APIWATCH_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "APIWATCH_TOPICS__SYNTHETIC": settings.topics.synthetic,
        "APIWATCH_TOPICS__PARTITIONS": str(settings.topics.partitions),
    }


async def test_checks_once_publishes_every_result_and_fails_the_pipeline(
    kafka_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = await kafka_settings()
    (tmp_path / "login.yaml").write_text(PASSING)
    (tmp_path / "balance.yaml").write_text(FAILING)
    with serve_bank() as bank:
        env = {**kafka_env(settings), "BANK_URL": bank.url, "BANK_PASSWORD": PASSWORD}
        done = await asyncio.to_thread(
            cli, "checks", "once", str(tmp_path), "--location", "ci-runner", env=env
        )
    assert (done.returncode, done.stderr) == (1, "apiwatch: 1 of 2 checks failed\n")
    lines = sorted(done.stdout.splitlines())
    assert lines[0].startswith("FAILED balance from ci-runner in ")
    assert lines[0].endswith("step 'read balance': status 401, expected 200")
    assert lines[1].startswith("PASSED login from ci-runner in ")

    records = await read_topic(settings, settings.topics.synthetic, expected=2)
    results = {r.key: SyntheticResult.model_validate_json(r.value) for r in records}
    assert set(results) == {b"login", b"balance"}  # keyed by check id
    assert results[b"login"].status is SyntheticStatus.PASSED
    assert results[b"balance"].status is SyntheticStatus.FAILED
    assert {r.location for r in results.values()} == {"ci-runner"}
    assert all(PASSWORD.encode() not in r.value for r in records)


def test_cli_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        PASSING.replace("assert: [{status: 200}]", "assert: [{sttus: 200}]")
    )
    bad = cli("checks", "validate", str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"apiwatch: {tmp_path / 'bad.yaml'}:12: steps[0].assert[0]: an assertion needs one of: "
        "status, response_time_ms, header, jsonpath, json_schema"
    ]
    flag = cli("checks", "once", "--bogus")
    assert (flag.returncode, flag.stderr.strip()) == (2, "apiwatch: No such option: --bogus")

    (tmp_path / "bad.yaml").write_text(PASSING)
    env = cli("checks", "once", str(tmp_path), "--no-publish", env={"BANK_URL": "x"})
    assert (env.returncode, env.stderr.strip()) == (
        2,
        "apiwatch: environment variables not set: BANK_PASSWORD",
    )


def _failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("cannot publish" in r.getMessage() for r in caplog.records)


async def test_results_are_kept_and_retried_until_kafka_comes_back(
    settings_for: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="apiwatch.streams.checks.publisher")
    port = free_port()
    settings = settings_for(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}", "request_timeout_s": 2}
    )
    publisher = ResultPublisher(
        settings.kafka, settings.topics.synthetic, retry_first_s=0.1, retry_max_s=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        for i in range(3):
            publisher.submit(f"check-{i}", b'{"n": %d}' % i)
        # A few failed attempts against nothing, each logged: the results are kept.
        assert await await_until(lambda: _failures(caplog) >= 2, timeout_s=20)
        assert (publisher.pending, publisher.published) == (3, 0)

        with EmbeddedBroker(port=port):
            await ensure_topics(settings.kafka, topic_specs(settings))
            assert await await_until(lambda: publisher.pending == 0, timeout_s=20)
            records = await read_topic(settings, settings.topics.synthetic, expected=3)
            assert sorted(r.key for r in records) == [b"check-0", b"check-1", b"check-2"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await publisher.close()
    assert publisher.dropped == 0


async def test_the_pending_queue_is_bounded_and_counts_what_it_drops(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    publisher = ResultPublisher(settings.kafka, "t", max_pending=2)
    for i in range(5):
        publisher.submit("k", b"%d" % i)
    assert (publisher.pending, publisher.dropped) == (2, 3)
    assert await publisher.drain(timeout_s=0.5) == 2  # nowhere to go: still kept
