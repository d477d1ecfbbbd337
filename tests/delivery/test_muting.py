"""Silences and inhibition end to end, through the HTTP API and the CLI, on a real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from apiwatch.models.alerts import AlertKind
from apiwatch.settings import Settings
from apiwatch.streams.cli import app

from .helpers import Recorder, alert_event, produce_alerts, running

pytestmark = pytest.mark.integration


def _fingerprints(body: dict[str, object]) -> set[str]:
    return {a["subject"] for a in body["alerts"]}  # type: ignore[attr-defined, index]


async def test_silence_mutes_inhibition_mutes_and_expiry_unmutes(
    delivery_settings: Callable[..., Settings], http_recorder: Recorder
) -> None:
    settings = delivery_settings(
        receivers={"hook": {"type": "webhook", "url": http_recorder.url("/hook")}},
        route={"receiver": "hook", "group_by": ["service"]},
        inhibit_rules=[
            {
                "source_matchers": ["kind=synthetic_failure"],
                "target_matchers": ["kind=latency_spike"],
                "equal": ["route"],
            }
        ],
    )
    silenced = alert_event({"service": "shop", "route": "/muted"})
    plain = alert_event({"service": "shop", "route": "/open"})
    outage = alert_event({"service": "shop", "route": "/down"}, kind=AlertKind.SYNTHETIC_FAILURE)
    inhibited = alert_event({"service": "shop", "route": "/down"})

    async with (
        running(settings) as (worker, _),
        httpx.AsyncClient(base_url=worker.api_url or "") as api,
    ):
        created = await api.post(
            "/api/v1/silences",
            json={
                "matchers": ["route=/muted"],
                "duration_s": 3600,
                "created_by": "ana",
                "comment": "deploy",
            },
        )
        assert created.status_code == 201, created.text
        silence_id = created.json()["id"]
        await produce_alerts(settings, outage, silenced, plain, inhibited)
        (first,) = await http_recorder.wait_for("/hook", lambda rs: len(rs) >= 1)
        assert _fingerprints(first.json()) == {plain.subject, outage.subject}

        expired = await api.delete(f"/api/v1/silences/{silence_id}")
        assert expired.json()["state"] == "expired"
        later = await http_recorder.wait_for(
            "/hook", lambda rs: any(silenced.subject in _fingerprints(r.json()) for r in rs)
        )
        listed = (await api.get("/api/v1/silences")).json()
        bad = await api.post(
            "/api/v1/silences", json={"matchers": ["route=/x"], "created_by": "ana"}
        )

    assert _fingerprints(later[-1].json()) == {plain.subject, outage.subject, silenced.subject}
    assert all(inhibited.subject not in _fingerprints(r.json()) for r in later)
    assert [(s["id"], s["state"], s["created_by"]) for s in listed] == [
        (silence_id, "expired", "ana")
    ]
    assert bad.status_code == 400 and "comment" in bad.json()["error"]


@pytest.fixture
def cli_config(delivery_settings: Callable[..., Settings], tmp_path: Path) -> Path:
    """A config file pointing the CLI at this test's broker and delivery topics."""
    settings = delivery_settings(receivers={}, route={})
    path = tmp_path / "apiwatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": settings.kafka.bootstrap_servers},
                "topics": {"alerts": settings.topics.alerts, "partitions": 2},
                "delivery": {"topics": settings.delivery.topics.model_dump(mode="json")},
            }
        )
    )
    return path


def test_silence_cli_adds_lists_and_expires_through_the_topic(cli_config: Path) -> None:
    runner = CliRunner()
    config = ["--config", str(cli_config)]
    added = runner.invoke(
        app,
        [
            "silence",
            "add",
            "service=shop",
            "route=~/users/.*",
            "-a",
            "ana",
            "-m",
            "deploy",
            "-d",
            "2h",
            *config,
        ],
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.strip()

    # Each command reads the compacted topic afresh: the silence outlives the process.
    listed = runner.invoke(app, ["silence", "list", "--json", *config])
    (shown,) = [json.loads(line) for line in listed.output.splitlines()]
    assert (shown["id"], shown["state"], shown["matchers"]) == (
        silence_id,
        "active",
        ["service=shop", "route=~/users/.*"],
    )
    assert runner.invoke(app, ["silence", "expire", silence_id, *config]).exit_code == 0
    assert runner.invoke(app, ["silence", "list", *config]).output == ""
    everything = runner.invoke(app, ["silence", "list", "--all", *config]).output
    assert silence_id in everything and "expired" in everything

    missing = runner.invoke(app, ["silence", "expire", "no-such-id", *config])
    assert missing.exit_code != 0
    bad = runner.invoke(app, ["silence", "add", "service", "-a", "a", "-m", "m", *config])
    assert bad.exit_code != 0


def test_notifications_log_cli_shows_outcomes(cli_config: Path) -> None:
    import asyncio

    from apiwatch.models.delivery.notification import LogEntry, Outcome
    from apiwatch.settings import load_settings
    from apiwatch.streams.deliver.notify_log import write_entry
    from apiwatch.streams.deliver.topics import delivery_topic_specs
    from apiwatch.streams.kafka import ensure_topics, make_producer

    settings = load_settings(cli_config)

    async def write(*entries: LogEntry) -> None:
        await ensure_topics(settings.kafka, delivery_topic_specs(settings))
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            for entry in entries:
                await write_entry(producer, settings.delivery.topics.log, entry)
        finally:
            await producer.stop()

    def entry(receiver: str, outcome: Outcome, fp: str) -> LogEntry:
        return LogEntry.model_validate(
            {
                "at": "2026-01-01T00:00:00Z",
                "notification_id": f"n-{receiver}",
                "receiver": receiver,
                "receiver_type": "webhook",
                "group_key": "0:{}",
                "status": "firing",
                "fingerprints": [fp],
                "event_ids": ["e1"],
                "attempt": 1,
                "outcome": outcome,
                "status_code": 200,
            }
        )

    asyncio.run(write(entry("hook", Outcome.SENT, "f1"), entry("pd", Outcome.DEAD_LETTERED, "f2")))
    runner = CliRunner()
    out = runner.invoke(app, ["notifications", "log", "--config", str(cli_config)])
    assert out.exit_code == 0, out.output
    assert "sent" in out.output and "dead_lettered" in out.output
    only = runner.invoke(
        app, ["notifications", "log", "--receiver", "pd", "--json", "--config", str(cli_config)]
    )
    assert [json.loads(x)["receiver"] for x in only.output.splitlines()] == ["pd"]
    by_fp = runner.invoke(
        app, ["notifications", "log", "--fingerprint", "f1", "--config", str(cli_config)]
    )
    assert "n-hook" in by_fp.output and "n-pd" not in by_fp.output
