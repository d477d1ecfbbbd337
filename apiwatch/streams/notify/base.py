"""The receiver interface and how HTTP failures are classified.

A notifier sends one notification and says how it went: success, or an error
and whether trying again could help. It never retries itself; the delivery
stage owns retries (through Kafka retry topics), as in Alertmanager.

Classification (:func:`classify_status`): 2xx is success; 429 and 5xx are
retryable, honouring ``Retry-After``; any other status is not; timeouts and
connection errors are retryable.

>>> classify_status(503, None).retryable, classify_status(404, None).retryable
(True, False)
>>> classify_status(429, "12").retry_after_s
12.0
>>> classify_status(202, None).ok
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

import httpx

from apiwatch.models.delivery.backoff import parse_retry_after
from apiwatch.models.delivery.notification import Notification
from apiwatch.models.delivery.receivers import ReceiverBase
from apiwatch.models.delivery.redact import redact

USER_AGENT = "apiwatch-delivery/1"
_BODY_PREVIEW = 200

C = TypeVar("C", bound=ReceiverBase)


@dataclass(frozen=True)
class SendResult:
    """How one send went. ``error`` is None on success and never holds a secret."""

    retryable: bool = False
    error: str | None = None
    status_code: int | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


SENT = SendResult()


def classify_status(status: int, retry_after: str | None, detail: str = "") -> SendResult:
    """Map an HTTP status to a :class:`SendResult`."""
    if 200 <= status < 300:
        return SendResult(status_code=status)
    error = f"HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status == 429 or status >= 500
    after = parse_retry_after(retry_after, datetime.now(tz=UTC)) if retryable else None
    return SendResult(retryable=retryable, error=error, status_code=status, retry_after_s=after)


class Notifier(ABC, Generic[C]):
    """Sends notifications to one configured receiver."""

    #: The ``type`` value of the receiver's configuration.
    type: ClassVar[str]

    def __init__(self, name: str, config: C, client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.client = client

    @abstractmethod
    async def notify(self, notification: Notification) -> SendResult:
        """Send ``notification``; return how it went (never raise for HTTP failures)."""

    def secrets(self) -> list[str]:
        return self.config.secrets()

    async def post(
        self, url: str, content: bytes, headers: Mapping[str, str] | None = None
    ) -> SendResult:
        """POST ``content`` as JSON and classify the outcome; errors are redacted.

        The error text never quotes the exception or the URL as such: httpx puts
        the URL in its messages, and URLs can hold tokens (Slack's do).
        """
        all_headers = {"content-type": "application/json", "user-agent": USER_AGENT}
        all_headers.update(headers or {})
        try:
            response = await self.client.post(
                url, content=content, headers=all_headers, timeout=self.config.timeout_s
            )
        except httpx.TimeoutException as exc:
            return SendResult(
                retryable=True,
                error=f"timeout after {self.config.timeout_s:g} s ({type(exc).__name__})",
            )
        except httpx.TransportError as exc:
            return SendResult(retryable=True, error=f"connection error ({type(exc).__name__})")
        detail = redact(response.text[:_BODY_PREVIEW], self.secrets()).strip()
        return classify_status(response.status_code, response.headers.get("retry-after"), detail)


def first_failure(results: list[SendResult]) -> SendResult:
    """Combine the results of a multi-request send: a retryable failure wins, then
    any failure, else success (the last status code)."""
    for result in results:
        if not result.ok and result.retryable:
            return result
    for result in results:
        if not result.ok:
            return result
    return results[-1] if results else SENT
