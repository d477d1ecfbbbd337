"""Webhooks end to end: grouping a burst into one signed request, against a real broker
and a real HTTP server."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook

from apiwatch.models.alerts import AlertKind
from apiwatch.models.delivery.notification import Outcome
from apiwatch.settings import Settings

from .helpers import Recorder, alert_event, produce_alerts, reading, running

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
TOKEN = "tok-3f9a77c1e4"


async def test_a_burst_of_one_group_is_one_signed_webhook(
    delivery_settings: Callable[..., Settings],
    http_recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = delivery_settings(
        receivers={
            "hook": {
                "type": "webhook",
                "url": http_recorder.url("/hook"),
                "secret": SECRET,
                "headers": {"Authorization": f"Bearer {TOKEN}"},
            }
        },
        route={"receiver": "hook", "group_by": ["service"], "group_interval_s": 60},
    )
    burst = [alert_event({"service": "shop", "route": f"/r{i}"}) for i in range(5)]
    other = alert_event({"service": "search", "route": "/q"}, kind=AlertKind.ERROR_SURGE)

    async with running(settings):
        await produce_alerts(settings, *burst)
        (first,) = await http_recorder.wait_for("/hook", lambda rs: len(rs) >= 1)
        # A later alert of another group; once it is delivered, anything more the
        # first group was going to send (it must not) would have been sent as well.
        await produce_alerts(settings, other)
        await http_recorder.wait_for("/hook", lambda rs: len(rs) >= 2)
        async with reading(settings, settings.delivery.topics.log) as log_topic:
            entries = await log_topic.wait_for(lambda es: len(es) >= 2)

    body = first.json()
    assert {a["id"] for a in body["alerts"]} == {e.id for e in burst}
    assert body["group_labels"] == {"service": "shop"} and body["status"] == "firing"
    shop = [r for r in http_recorder.at("/hook") if r.json()["group_labels"] == {"service": "shop"}]
    assert len(shop) == 1

    # Standard Webhooks: the library verifies the exact bytes we received.
    verified = Webhook(SECRET).verify(first.body, first.headers)
    assert verified["id"] == first.headers["webhook-id"] == first.headers["idempotency-key"]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    # One-alert notifications use the alert's event id as the idempotency key.
    second = http_recorder.at("/hook")[1]
    assert second.headers["webhook-id"] == other.id

    assert [e["outcome"] for e in entries] == [Outcome.SENT.value] * 2
    for secret in (SECRET, TOKEN, "c2VjcmV0LXNpZ25pbmc"):
        assert secret not in caplog.text
        assert all(secret not in str(e) for e in entries)
