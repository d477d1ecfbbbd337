"""Unit tests: backoff, retry tiers, offsets, the retry stage's waiting, redaction, and
``apiwatch webhook verify``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from apiwatch.models.delivery.backoff import backoff_delay, parse_retry_after, tier_for_delay
from apiwatch.models.delivery.config import RetryConfig
from apiwatch.models.delivery.notification import Notification
from apiwatch.streams.cli import app
from apiwatch.streams.deliver.offsets import OffsetTracker
from apiwatch.streams.deliver.redacting_log import redacting
from apiwatch.streams.deliver.retry_stage import RetryStage

from .helpers import alert_event

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_backoff_grows_is_capped_and_jitters_within_bounds() -> None:
    cfg = RetryConfig(base_delay_s=1, factor=3, max_delay_s=20, jitter=0.5)
    assert [backoff_delay(n, cfg, rand=lambda: 0.5) for n in (1, 2, 3, 4)] == [1, 3, 9, 20]
    assert backoff_delay(2, cfg, rand=lambda: 0.0) == pytest.approx(1.5)
    assert backoff_delay(2, cfg, rand=lambda: 1.0) == pytest.approx(4.5)


def test_tiers_group_delays_into_bands() -> None:
    cfg = RetryConfig(base_delay_s=5, factor=2, tiers=4)
    assert [tier_for_delay(d, cfg) for d in (0.1, 5, 9.9, 10, 20, 40, 3600)] == [
        0,
        0,
        0,
        1,
        2,
        3,
        3,
    ]


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Sat, 28 Feb 2026 00:00:00 GMT", NOW) == 0.0


def test_offsets_commit_only_what_moved_and_forget_revoked_partitions() -> None:
    t = OffsetTracker()
    t.begin(("a", 0), 10)
    t.begin(("a", 1), 3)
    t.done(("a", 1), 3)
    assert t.to_commit() == {("a", 0): 10, ("a", 1): 4}
    t.committed(t.to_commit())
    assert t.to_commit() == {}
    t.forget([("a", 0)])
    t.done(("a", 0), 10)  # a send finishing after the revoke is ignored
    assert t.committable() == {("a", 1): 4}
    assert t.in_flight() == 0


class _Record:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value


class _Flow:
    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()

    def pause(self, tp: tuple[str, int]) -> None:
        self.paused.add(tp)

    def resume(self, tp: tuple[str, int]) -> None:
        self.paused.discard(tp)


class _Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def submit(self, notification: Notification, on_done: Any) -> None:
        self.sent.append((notification.id, on_done))


def _retry(nid: str, due: datetime) -> bytes:
    event = alert_event({"service": "a"})
    return (
        Notification(
            id=nid,
            receiver="r",
            group_key="k",
            group_labels={},
            alerts=[event],
            created_at=NOW,
            attempt=2,
            not_before=due,
        )
        .model_dump_json()
        .encode()
    )


def test_retry_stage_waits_for_the_head_and_pauses_its_partition() -> None:
    clock = [NOW]
    sender, flow, tracker = _Sender(), _Flow(), OffsetTracker()
    stage = RetryStage(sender, tracker, flow, clock=lambda: clock[0])  # type: ignore[arg-type]
    stage.handle(
        [
            _Record("retry.0", 0, 0, _retry("due", NOW)),
            _Record("retry.0", 0, 1, _retry("later", NOW + timedelta(seconds=5))),
            _Record("retry.0", 0, 2, b"not json"),
        ]
    )
    assert [nid for nid, _ in sender.sent] == ["due"]
    assert flow.paused == {("retry.0", 0)}
    clock[0] = NOW + timedelta(seconds=5)
    stage.tick()
    assert [nid for nid, _ in sender.sent] == ["due", "later"] and flow.paused == set()
    # Nothing is committed past a send that has not settled.
    assert tracker.committable() == {("retry.0", 0): 0}
    for _, on_done in sender.sent:
        on_done()
    assert tracker.committable() == {("retry.0", 0): 3}


def test_redacting_filter_masks_secrets_in_http_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with redacting(["https://hooks.example/T/B/s3cr3t"]):
        logging.getLogger("httpx").info(
            'HTTP Request: POST %s "200"', "https://hooks.example/T/B/s3cr3t"
        )
    logging.getLogger("httpx").info("after: %s", "s3cr3t")  # the filter is gone again
    assert "POST *** " in caplog.text
    assert caplog.text.count("s3cr3t") == 1


def test_webhook_verify_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec_" + "Y2xpLXZlcmlmeS1zZWNyZXQ="
    body = b'{"id": "e1", "alerts": []}'
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign("e1", now, body.decode())
    path = tmp_path / "body.json"
    path.write_bytes(body)
    monkeypatch.setenv("APIWATCH_WEBHOOK_SECRET", secret)
    args = ["webhook", "verify", str(path), "--id", "e1", "--timestamp", str(int(now.timestamp()))]
    runner = CliRunner()
    ok = runner.invoke(app, [*args, "--signature", signature])
    assert ok.exit_code == 0 and "valid" in ok.output
    path.write_bytes(body.replace(b"e1", b"e2"))
    tampered = runner.invoke(app, [*args, "--signature", signature])
    assert tampered.exit_code == 1
