"""Webhook receiver: a JSON POST signed per the Standard Webhooks specification.

Headers: ``webhook-id`` (the notification id, which is the alert event id for a
one-alert notification, stable across retries: the idempotency key; it is
also sent as ``Idempotency-Key``), ``webhook-timestamp`` (seconds, at send
time) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` over
``id.timestamp.body``). Subscribers verify with the ``standardwebhooks``
package or ``apiwatch webhook verify``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from standardwebhooks.webhooks import Webhook

from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.payloads.webhook import webhook_body
from apiwatch.models.delivery.receivers import WebhookReceiver
from apiwatch.streams.notify.base import Notifier, SendResult


def signed_headers(msg_id: str, body: bytes, secret: str | None, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` (no signature without a secret)."""
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "idempotency-key": msg_id,
    }
    if secret:
        headers["webhook-signature"] = Webhook(secret).sign(msg_id, now, body.decode())
    return headers


class WebhookNotifier(Notifier[WebhookReceiver]):
    type = "webhook"

    async def notify(self, notification: Notification) -> SendResult:
        body = orjson.dumps(webhook_body(notification))
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers.update(signed_headers(notification.id, body, secret, datetime.now(tz=UTC)))
        return await self.post(self.config.url, body, headers)
