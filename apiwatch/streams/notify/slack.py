"""Slack incoming-webhook receiver: one readable message per notification."""

from __future__ import annotations

import orjson

from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.payloads.slack import slack_message
from apiwatch.models.delivery.receivers import SlackReceiver
from apiwatch.streams.notify.base import Notifier, SendResult


class SlackNotifier(Notifier[SlackReceiver]):
    type = "slack"

    async def notify(self, notification: Notification) -> SendResult:
        body = orjson.dumps(slack_message(notification, self.config.alert_url_template))
        return await self.post(self.config.webhook_url.get_secret_value(), body)
