"""On-call integrations end to end: routing with ``continue`` to PagerDuty, Opsgenie and
Slack, firing then resolved, against a real broker and a real HTTP server."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from apiwatch.models.alerts import AlertKind, AlertStatus, Severity
from apiwatch.settings import Settings

from .helpers import Recorder, alert_event, produce_alerts, running

pytestmark = pytest.mark.integration

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
GENIE_KEY = "genie-0c9d8e7f-secret"
SLACK_PATH = "/services/T000/B000/sl4ckt0k3n"


async def test_firing_then_resolved_reaches_each_oncall_tool_with_one_key(
    delivery_settings: Callable[..., Settings],
    http_recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = {"matchers": ["kind=error_surge"], "continue": True}
    settings = delivery_settings(
        receivers={
            "pd": {
                "type": "pagerduty",
                "url": http_recorder.url("/v2/enqueue"),
                "routing_key": ROUTING_KEY,
            },
            "genie": {"type": "opsgenie", "api_url": http_recorder.url(""), "api_key": GENIE_KEY},
            "chat": {
                "type": "slack",
                "webhook_url": http_recorder.url(SLACK_PATH),
                "alert_url_template": "https://dash.example/a/{fingerprint}",
            },
            "nobody": {"type": "webhook", "url": http_recorder.url("/unused")},
        },
        route={
            "receiver": "nobody",
            "routes": [
                {**errors, "receiver": "pd"},
                {**errors, "receiver": "genie"},
                {"matchers": ["kind=error_surge", "severity=~critical|error"], "receiver": "chat"},
            ],
        },
    )
    labels = {"service": "pay", "route": "/charge"}
    firing = alert_event(labels, kind=AlertKind.ERROR_SURGE, severity=Severity.CRITICAL)
    resolved = alert_event(labels, kind=AlertKind.ERROR_SURGE, status=AlertStatus.RESOLVED)

    async with running(settings):
        await produce_alerts(settings, firing)
        await http_recorder.wait_for("/v2/enqueue", lambda rs: len(rs) == 1)
        await produce_alerts(settings, resolved)
        pd = await http_recorder.wait_for("/v2/enqueue", lambda rs: len(rs) == 2)
        genie = await http_recorder.wait_for("/v2/alerts", lambda rs: len(rs) == 1)
        await http_recorder.wait_for(f"/v2/alerts/{firing.subject}/close", lambda rs: len(rs) == 1)
        chat = await http_recorder.wait_for(SLACK_PATH, lambda rs: len(rs) == 2)

    trigger, resolve = (r.json() for r in pd)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == firing.subject
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "pay"
    assert (
        "observed 900 ms vs expected 120 ms"
        in trigger["payload"]["custom_details"]["observed_vs_expected"]
    )

    create = genie[0]
    assert create.json()["alias"] == firing.subject and create.json()["priority"] == "P1"
    assert create.headers["authorization"] == f"GenieKey {GENIE_KEY}"
    close = http_recorder.at(f"/v2/alerts/{firing.subject}/close")
    assert close[0].path.endswith("?identifierType=alias")

    text = chat[0].json()["blocks"][1]["text"]["text"]
    assert "observed 900 ms vs expected 120 ms" in text
    assert f"https://dash.example/a/{firing.subject}" in text
    assert "[RESOLVED]" in chat[1].json()["text"]
    assert http_recorder.at("/unused") == []

    for secret in (ROUTING_KEY, GENIE_KEY, "sl4ckt0k3n"):
        assert secret not in caplog.text
