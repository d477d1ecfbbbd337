"""Failures end to end: classification, backoff through the retry topics, the DLQ, and a
worker killed mid-retry. Real broker, real HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from apiwatch.models.delivery.notification import Outcome
from apiwatch.settings import Settings

from .helpers import Recorder, alert_event, kill, produce_alerts, reading, running

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "cmV0cnktc2lnbmluZy1zZWNyZXQtZm9yLXRlc3Rz"


def _hook(recorder: Recorder, path: str) -> dict[str, object]:
    return {"type": "webhook", "url": recorder.url(path), "secret": SECRET, "timeout_s": 2}


def _by_service(*names: str) -> list[dict[str, object]]:
    return [{"matchers": [f"service={n}"], "receiver": n} for n in names]


async def test_failures_are_retried_with_backoff_or_dead_lettered(
    delivery_settings: Callable[..., Settings], http_recorder: Recorder
) -> None:
    receivers = ("flaky", "down", "rejecting", "throttled", "stuck")
    hooks = {name: _hook(http_recorder, f"/{name}") for name in receivers}
    hooks["stuck"]["timeout_s"] = 30
    settings = delivery_settings(
        receivers=hooks,
        route={"receiver": "flaky", "routes": _by_service(*receivers)},
        retry={"max_attempts": 3},
    )
    http_recorder.script("/flaky", 503)
    http_recorder.fail("/down", 503)
    http_recorder.script("/rejecting", 400)
    http_recorder.script("/throttled", (429, {"Retry-After": "1"}))
    http_recorder.stall("/stuck")
    events = {name: alert_event({"service": name, "route": "/x"}) for name in receivers}

    async with running(settings):
        await produce_alerts(settings, *events.values())
        async with reading(settings, settings.delivery.topics.dlq) as dlq:
            dead = await dlq.wait_for(lambda ds: len(ds) >= 2)
        async with reading(settings, settings.delivery.topics.log) as log_topic:
            log = await log_topic.wait_for(lambda es: sum(e["outcome"] == "sent" for e in es) >= 2)
        flaky = http_recorder.at("/flaky")
        throttled = http_recorder.at("/throttled")
        # All of the above settled while the stuck receiver still holds its request.
        assert len(http_recorder.at("/stuck")) == 1
        assert all(e["receiver"] != "stuck" for e in log)
        http_recorder.unstall()

    # 503 then 200: exactly one more send, same idempotency key, after backoff.
    assert [r.status for r in flaky] == [503, 200]
    assert flaky[0].headers["webhook-id"] == flaky[1].headers["webhook-id"] == events["flaky"].id
    # Down for longer than the retry budget (3 attempts): the DLQ, with the reason.
    by_receiver = {d["receiver"]: d for d in dead}
    assert len(http_recorder.at("/down")) == 3
    assert by_receiver["down"]["reason"] == "retries_exhausted"
    assert by_receiver["down"]["attempts"] == 3
    assert by_receiver["down"]["error"].startswith("HTTP 503")
    # A 400 is not retryable: straight to the DLQ after one request.
    assert len(http_recorder.at("/rejecting")) == 1
    assert by_receiver["rejecting"]["reason"] == "not_retryable"
    # 429 honours Retry-After: the retry was scheduled at least that far ahead.
    assert [r.status for r in throttled] == [429, 200]
    scheduled = next(
        e for e in log if e["receiver"] == "throttled" and e["outcome"] == "retry_scheduled"
    )
    wait = datetime.fromisoformat(scheduled["retry_at"]) - datetime.fromisoformat(scheduled["at"])
    assert wait.total_seconds() >= 0.9
    assert {e["outcome"] for e in log} <= {o.value for o in Outcome}
    for record in [*dead, *log]:
        assert "cmV0cnktc2lnbmluZy1zZWNyZXQ" not in str(record)


async def test_a_worker_killed_mid_retry_delivers_after_restart(
    delivery_settings: Callable[..., Settings], http_recorder: Recorder
) -> None:
    settings = delivery_settings(
        receivers={"flaky": _hook(http_recorder, "/flaky")},
        route={"receiver": "flaky"},
        # Long enough that the retry is still waiting when the worker dies.
        retry={"base_delay_s": 2.0, "jitter": 0.0, "max_delay_s": 4.0},
    )
    http_recorder.fail("/flaky", 503)
    event = alert_event({"service": "shop", "route": "/x"})

    async with reading(settings, settings.delivery.topics.log) as log_topic:
        async with running(settings) as (_, task):
            await produce_alerts(settings, event)
            await log_topic.wait_for(lambda es: any(e["outcome"] == "retry_scheduled" for e in es))
            await kill(task)
        http_recorder.recover("/flaky")
        async with running(settings):
            delivered = await http_recorder.wait_for(
                "/flaky", lambda rs: any(r.status == 200 for r in rs)
            )

    assert delivered[0].status == 503
    ok = [r for r in delivered if r.status == 200]
    assert ok[0].headers["webhook-id"] == event.id
