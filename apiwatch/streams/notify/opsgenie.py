"""Opsgenie receiver: create (alias = fingerprint) while firing, close by alias when resolved."""

from __future__ import annotations

import orjson

from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.payloads.opsgenie import opsgenie_request
from apiwatch.models.delivery.receivers import OpsgenieReceiver
from apiwatch.streams.notify.base import Notifier, SendResult, first_failure


class OpsgenieNotifier(Notifier[OpsgenieReceiver]):
    type = "opsgenie"

    async def notify(self, notification: Notification) -> SendResult:
        auth = {"authorization": f"GenieKey {self.config.api_key.get_secret_value()}"}
        results: list[SendResult] = []
        for event in notification.alerts:
            request = opsgenie_request(event, tags=self.config.tags)
            url = self.config.api_url.rstrip("/") + request.path
            result = await self.post(url, orjson.dumps(request.body), auth)
            results.append(result)
            if result.retryable:
                # Opsgenie de-duplicates creates by alias; resending is safe.
                break
        return first_failure(results)
