"""PagerDuty Events API v2 receiver: one event per alert, trigger or resolve."""

from __future__ import annotations

import orjson

from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.payloads.pagerduty import pagerduty_event
from apiwatch.models.delivery.receivers import PagerDutyReceiver
from apiwatch.streams.notify.base import Notifier, SendResult, first_failure


class PagerDutyNotifier(Notifier[PagerDutyReceiver]):
    type = "pagerduty"

    async def notify(self, notification: Notification) -> SendResult:
        key = self.config.routing_key.get_secret_value()
        results: list[SendResult] = []
        for event in notification.alerts:
            body = pagerduty_event(
                event, key, client=self.config.client, client_url=self.config.client_url
            )
            result = await self.post(self.config.url, orjson.dumps(body))
            results.append(result)
            if result.retryable:
                # PagerDuty merges repeated events by dedup_key, so the whole
                # notification can be sent again later.
                break
        return first_failure(results)
