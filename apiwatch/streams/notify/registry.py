"""The receiver registry: receiver ``type`` to notifier class, one line each.

Adding an integration means one new module here, one config model in
:mod:`apiwatch.models.delivery.receivers`, and one line below.

>>> sorted(NOTIFIERS)
['opsgenie', 'pagerduty', 'slack', 'webhook']
"""

from __future__ import annotations

from typing import Any

import httpx

from apiwatch.models.delivery.receivers import ReceiverConfig
from apiwatch.streams.notify.base import Notifier
from apiwatch.streams.notify.opsgenie import OpsgenieNotifier
from apiwatch.streams.notify.pagerduty import PagerDutyNotifier
from apiwatch.streams.notify.slack import SlackNotifier
from apiwatch.streams.notify.webhook import WebhookNotifier

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
    "webhook": WebhookNotifier,
    "pagerduty": PagerDutyNotifier,
    "opsgenie": OpsgenieNotifier,
    "slack": SlackNotifier,
}


def build_notifier(name: str, config: ReceiverConfig, client: httpx.AsyncClient) -> Notifier[Any]:
    """The notifier for receiver ``name``; an unknown type names the known ones."""
    try:
        cls = NOTIFIERS[config.type]
    except KeyError:
        known = ", ".join(sorted(NOTIFIERS))
        raise ValueError(
            f"receiver {name!r} has unknown type {config.type!r}; known: {known}"
        ) from None
    return cls(name, config, client)
