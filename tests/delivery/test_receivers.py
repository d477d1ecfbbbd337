"""Receivers against a real local HTTP server (no broker): classification, headers, bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from apiwatch.models.alerts import AlertKind, AlertStatus, Severity
from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.receivers import ReceiverConfig
from apiwatch.streams.broker import free_port
from apiwatch.streams.notify.base import Notifier
from apiwatch.streams.notify.registry import NOTIFIERS, build_notifier

from .helpers import Recorder, alert_event

SECRET = "whsec_" + "dW5pdC10ZXN0LXNpZ25pbmctc2VjcmV0"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def notification(*statuses: AlertStatus) -> Notification:
    events = [
        alert_event({"service": "shop", "route": f"/r{i}"}, kind=AlertKind.ERROR_SURGE, status=s)
        for i, s in enumerate(statuses or (AlertStatus.FIRING,))
    ]
    return Notification(
        id="n-1",
        receiver="r",
        group_key="0:{}",
        group_labels={"service": "shop"},
        alerts=events,
        created_at=datetime.now(tz=UTC),
    )


def notifier(config: dict[str, Any], client: httpx.AsyncClient) -> Notifier[Any]:
    from pydantic import TypeAdapter

    return build_notifier("r", TypeAdapter(ReceiverConfig).validate_python(config), client)


@pytest.mark.parametrize(
    ("answer", "retryable", "retry_after"),
    [
        (500, True, None),
        (503, True, None),
        ((429, {"Retry-After": "7"}), True, 7.0),
        (400, False, None),
        (404, False, None),
        (409, False, None),
    ],
)
async def test_http_failures_are_classified(
    http_recorder: Recorder,
    client: httpx.AsyncClient,
    answer: int | tuple[int, dict[str, str]],
    retryable: bool,
    retry_after: float | None,
) -> None:
    http_recorder.script("/hook", answer)
    result = await notifier({"type": "webhook", "url": http_recorder.url("/hook")}, client).notify(
        notification()
    )
    assert (result.ok, result.retryable, result.retry_after_s) == (False, retryable, retry_after)
    assert result.error is not None and result.error.startswith("HTTP ")


async def test_timeouts_and_refused_connections_are_retryable(
    http_recorder: Recorder, client: httpx.AsyncClient
) -> None:
    http_recorder.stall("/slow")
    slow = notifier(
        {"type": "webhook", "url": http_recorder.url("/slow"), "timeout_s": 0.2}, client
    )
    timed_out = await slow.notify(notification())
    assert timed_out.retryable and "timeout" in (timed_out.error or "")
    closed = f"http://127.0.0.1:{free_port()}/hook"
    refused = await notifier({"type": "webhook", "url": closed}, client).notify(notification())
    assert refused.retryable and "connection error" in (refused.error or "")
    assert closed not in (refused.error or "")


async def test_webhook_is_signed_over_the_exact_body(
    http_recorder: Recorder, client: httpx.AsyncClient
) -> None:
    config = {
        "type": "webhook",
        "url": http_recorder.url("/hook"),
        "secret": SECRET,
        "headers": {"X-Team": "payments"},
    }
    result = await notifier(config, client).notify(
        notification(AlertStatus.FIRING, AlertStatus.RESOLVED)
    )
    assert result.ok and result.status_code == 200
    (sent,) = http_recorder.at("/hook")
    body = Webhook(SECRET).verify(sent.body, sent.headers)
    assert sent.headers["webhook-id"] == sent.headers["idempotency-key"] == "n-1"
    assert sent.headers["x-team"] == "payments"
    assert body["status"] == "firing" and len(body["alerts"]) == 2
    assert body["common_labels"] == {"service": "shop"}
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "b3RoZXItc2VjcmV0").verify(sent.body, sent.headers)


async def test_pagerduty_sends_one_event_per_alert(
    http_recorder: Recorder, client: httpx.AsyncClient
) -> None:
    config = {"type": "pagerduty", "url": http_recorder.url("/pd"), "routing_key": "rk-1"}
    n = notification(AlertStatus.FIRING, AlertStatus.RESOLVED)
    assert (await notifier(config, client).notify(n)).ok
    trigger, resolve = (r.json() for r in http_recorder.at("/pd"))
    assert trigger["event_action"] == "trigger" and trigger["payload"]["class"] == "error_surge"
    assert resolve == {
        "routing_key": "rk-1",
        "event_action": "resolve",
        "dedup_key": n.alerts[1].subject,
    }


async def test_a_retryable_failure_stops_a_multi_request_send(
    http_recorder: Recorder, client: httpx.AsyncClient
) -> None:
    http_recorder.script("/pd", 502)
    config = {"type": "pagerduty", "url": http_recorder.url("/pd"), "routing_key": "rk-1"}
    result = await notifier(config, client).notify(
        notification(AlertStatus.FIRING, AlertStatus.FIRING)
    )
    assert result.retryable and len(http_recorder.at("/pd")) == 1


async def test_error_text_never_holds_a_secret(
    http_recorder: Recorder, client: httpx.AsyncClient
) -> None:
    # A receiver that echoes the request back in its error body.
    http_recorder.script("/services/T/B/tok3n", 400)
    config = {"type": "slack", "webhook_url": http_recorder.url("/services/T/B/tok3n")}
    slack = notifier(config, client)
    result = await slack.notify(notification())
    assert "tok3n" not in (result.error or "")
    assert slack.secrets() == [http_recorder.url("/services/T/B/tok3n")]


def test_registry_lists_every_receiver_type() -> None:
    from typing import get_args

    union = get_args(get_args(ReceiverConfig)[0])
    assert sorted(NOTIFIERS) == sorted(m.model_fields["type"].default for m in union)
    assert all(NOTIFIERS[name].type == name for name in NOTIFIERS)


def test_severity_maps_onto_pagerduty_and_opsgenie() -> None:
    from apiwatch.models.delivery.payloads.opsgenie import PRIORITY
    from apiwatch.models.delivery.payloads.pagerduty import SEVERITY

    assert set(SEVERITY) == set(PRIORITY) == set(Severity)
