"""Slack incoming webhook: a readable message with observed vs expected and a link."""

from __future__ import annotations

from typing import Any

from apiwatch.models.alerts import AlertEvent, AlertStatus
from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.payloads._text import observed_vs_expected, truncate

_ICON = {AlertStatus.FIRING: ":rotating_light:", AlertStatus.RESOLVED: ":white_check_mark:"}


def _alert_line(event: AlertEvent, url_template: str | None) -> str:
    alert = event.data
    head = f"{_ICON[alert.status]} *[{alert.status.value.upper()}] {alert.kind.value}* ({alert.severity.value})"
    lines = [head, alert.summary]
    comparison = observed_vs_expected(alert)
    if comparison:
        lines.append(comparison)
    if url_template:
        lines.append(f"<{url_template.replace('{fingerprint}', alert.fingerprint)}|details>")
    return "\n".join(lines)


def slack_message(notification: Notification, url_template: str | None) -> dict[str, Any]:
    """Blocks for the message, and a plain ``text`` fallback for notifications.

    >>> from datetime import UTC, datetime
    >>> from apiwatch.models.alerts import Alert, AlertKind, Severity
    >>> a = Alert(fingerprint="f1", kind=AlertKind.ERROR_SURGE, status=AlertStatus.FIRING,
    ...           severity=Severity.ERROR, summary="5xx rate 12%", labels={"service": "shop"},
    ...           started_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> n = Notification(id="n", receiver="chat", group_key="0:{}", group_labels={"service": "shop"},
    ...                  alerts=[AlertEvent.emit(a, transition="firing", source="/t")],
    ...                  created_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> slack_message(n, "https://dash/alerts/{fingerprint}")["text"]
    '[FIRING] 1 alert for service=shop'
    """
    scope = ", ".join(f"{k}={v}" for k, v in notification.group_labels.items()) or "all"
    count = len(notification.alerts)
    text = f"[{notification.status.upper()}] {count} alert{'s' if count != 1 else ''} for {scope}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(text, 150)}}
    ]
    # Slack allows 50 blocks per message; the rest are summarised in one line.
    shown = notification.alerts[:45]
    for event in shown:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate(_alert_line(event, url_template), 3000),
                },
            }
        )
    if len(notification.alerts) > len(shown):
        more = len(notification.alerts) - len(shown)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]}
        )
    return {"text": text, "blocks": blocks}
