"""The webhook body: the group, its labels, and the alerts as CloudEvents.

The body is serialised once and those exact bytes are signed and sent, so a
subscriber verifies the signature over the raw request body.
"""

from __future__ import annotations

from typing import Any

from apiwatch.models.delivery.notification import Notification

#: Version of the body layout, so subscribers can tell layouts apart if it changes.
BODY_VERSION = "1"


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The JSON body: Alertmanager's webhook layout with CloudEvents alerts."""
    return {
        "version": BODY_VERSION,
        "id": notification.id,
        "receiver": notification.receiver,
        "status": notification.status,
        "group_key": notification.group_key,
        "group_labels": notification.group_labels,
        "common_labels": notification.common_labels(),
        "alerts": [e.model_dump(mode="json") for e in notification.alerts],
    }
