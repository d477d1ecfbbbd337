"""Receiver configuration: one strict model per integration, picked by ``type``.

Receivers are configured as a mapping from name to settings. Names are lower
case so that any setting, secrets above all, can be given by environment
variable: ``APIWATCH_DELIVERY__RECEIVERS__ONCALL__ROUTING_KEY`` sets
``routing_key`` of the receiver named ``oncall``. Secrets are
:class:`~pydantic.SecretStr`, so printing a config never shows them.

>>> from pydantic import TypeAdapter
>>> r = TypeAdapter(ReceiverConfig).validate_python(
...     {"type": "pagerduty", "routing_key": "R0123"})
>>> r.url, r.routing_key
('https://events.pagerduty.com/v2/enqueue', SecretStr('**********'))
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

RECEIVER_NAME = r"^[a-z][a-z0-9_]*$"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


class ReceiverBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, le=300, description="Whole-request timeout.")
    send_resolved: bool = Field(True, description="Also notify when alerts resolve.")
    max_in_flight: int = Field(
        4, ge=1, le=256, description="Concurrent requests to this receiver; others never wait."
    )

    def secrets(self) -> list[str]:
        """Every secret value this receiver holds, for redaction."""
        found: list[str] = []
        for value in self.__dict__.values():
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, dict):
                found.extend(
                    v.get_secret_value() for v in value.values() if isinstance(v, SecretStr)
                )
        return [s for s in found if s]


class WebhookReceiver(ReceiverBase):
    """A JSON POST signed per the Standard Webhooks specification."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = Field(
        None, description="Signing secret (whsec_<base64>); unset sends unsigned requests."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Extra headers; values are treated as secrets (they often carry tokens).",
    )

    _url = field_validator("url")(_http_url)


class PagerDutyReceiver(ReceiverBase):
    """PagerDuty Events API v2: trigger on firing, resolve on resolved."""

    type: Literal["pagerduty"] = "pagerduty"
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: SecretStr
    client: str = "apiwatch"
    client_url: str | None = None

    _url = field_validator("url")(_http_url)


class OpsgenieReceiver(ReceiverBase):
    """Opsgenie Alert API: create with alias = fingerprint, close on resolve."""

    type: Literal["opsgenie"] = "opsgenie"
    api_url: str = "https://api.opsgenie.com"
    api_key: SecretStr
    tags: list[str] = Field(default_factory=list)

    _url = field_validator("api_url")(_http_url)


class SlackReceiver(ReceiverBase):
    """Slack incoming webhook. Its URL embeds a token, so the whole URL is a secret."""

    type: Literal["slack"] = "slack"
    webhook_url: SecretStr
    alert_url_template: str | None = Field(
        None, description="Link per alert; {fingerprint} is replaced, e.g. a dashboard URL."
    )

    @field_validator("webhook_url")
    @classmethod
    def _slack_url(cls, value: SecretStr) -> SecretStr:
        _http_url(value.get_secret_value())
        return value


ReceiverConfig = Annotated[
    WebhookReceiver | PagerDutyReceiver | OpsgenieReceiver | SlackReceiver,
    Field(discriminator="type"),
]
