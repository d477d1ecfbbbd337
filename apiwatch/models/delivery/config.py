"""Delivery configuration: topics, retries, the route tree, receivers, inhibition rules.

Loaded once into frozen, strict models (unknown keys are errors). A route
leaves any of ``receiver``, ``group_by`` and the three intervals unset to
inherit them from its parent; :func:`apiwatch.models.delivery.routing.build_tree`
resolves the inheritance.

>>> cfg = DeliveryConfig.model_validate({
...     "receivers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/x"}},
...     "route": {"receiver": "hook", "routes": [
...         {"matchers": ["kind=~brute_force|credential_stuffing"], "continue": True}]},
... })
>>> cfg.route.routes[0].continue_, str(cfg.route.routes[0].matchers[0])
(True, 'kind=~brute_force|credential_stuffing')
>>> DeliveryConfig.model_validate({"route": {"receiver": "nope"}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for DeliveryConfig
...unknown receiver 'nope' in route; configured receivers: (none)...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from apiwatch.models.delivery.matchers import MatcherField
from apiwatch.models.delivery.receivers import RECEIVER_NAME, ReceiverConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliveryTopics(_Strict):
    """Topics of the delivery stage (created on start with explicit configs)."""

    routed: str = Field(
        "apiwatch.notifications.routed",
        description="Alerts re-keyed by group, so each group lives on one partition.",
    )
    retry_prefix: str = Field(
        "apiwatch.notifications.retry", description="Retry tier i is '<prefix>.<i>'."
    )
    dlq: str = "apiwatch.notifications.dlq"
    silences: str = Field("apiwatch.silences", description="Compacted; key = silence id.")
    log: str = "apiwatch.notifications.log"
    partitions: int | None = Field(None, ge=1, le=1024, description="None: use topics.partitions.")


class RetryConfig(_Strict):
    """Exponential backoff with jitter, through Kafka retry topics.

    Attempt ``n`` (the first retry is ``n = 1``) waits
    ``min(max_delay_s, base_delay_s * factor ** (n - 1))``, then ± ``jitter``
    of that. A ``Retry-After`` longer than that wins. After ``max_attempts``
    sends in total the notification goes to the DLQ.
    """

    max_attempts: int = Field(8, ge=1, le=100)
    base_delay_s: float = Field(5.0, gt=0)
    factor: float = Field(2.0, ge=1.0)
    max_delay_s: float = Field(900.0, gt=0)
    jitter: float = Field(0.2, ge=0.0, le=1.0)
    tiers: int = Field(
        4,
        ge=1,
        le=16,
        description="Retry topics; tier i holds delays from base*factor**i, so records "
        "in one topic come due in about the order they were written.",
    )
    max_retry_after_s: float = Field(3600.0, gt=0, description="Cap on a receiver's Retry-After.")


class ApiConfig(_Strict):
    """The small HTTP API for silences, served by each delivery worker."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8098, ge=0, le=65535, description="0 picks a free port.")


class InhibitRuleConfig(_Strict):
    """Mute alerts matching ``target_matchers`` while an alert matching
    ``source_matchers`` fires with the same values of the ``equal`` labels."""

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


class RouteConfig(_Strict):
    """A node of the routing tree. Unset options are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    matchers: list[MatcherField] = Field(default_factory=list)
    continue_: bool = Field(
        False, alias="continue", description="Keep matching siblings after this route matched."
    )
    group_by: list[str] | None = Field(
        None, description="Labels that form a group; ['...'] groups by all labels."
    )
    group_wait_s: float | None = Field(None, ge=0)
    group_interval_s: float | None = Field(None, gt=0)
    repeat_interval_s: float | None = Field(None, gt=0)
    routes: list[RouteConfig] = Field(default_factory=list)

    def walk(self) -> Iterator[RouteConfig]:
        yield self
        for child in self.routes:
            yield from child.walk()


class DeliveryConfig(_Strict):
    """Everything the delivery stage needs."""

    enabled: bool = True
    group_id: str = "apiwatch-deliver"
    tick_s: float = Field(0.25, gt=0, le=10, description="How often due groups are flushed.")
    max_in_flight: int = Field(
        1000, ge=1, description="Notifications in flight before the stage stops fetching."
    )
    topics: DeliveryTopics = DeliveryTopics()
    retry: RetryConfig = RetryConfig()
    api: ApiConfig = ApiConfig()
    route: RouteConfig = Field(
        default_factory=RouteConfig,
        description="The root is the default route; with no receiver, unmatched alerts "
        "are not notified.",
    )
    receivers: dict[Annotated[str, StringConstraints(pattern=RECEIVER_NAME)], ReceiverConfig] = (
        Field(default_factory=dict)
    )
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_tree(self) -> DeliveryConfig:
        for node in self.route.walk():
            if node.receiver is not None and node.receiver not in self.receivers:
                known = ", ".join(sorted(self.receivers)) or "(none)"
                raise ValueError(
                    f"unknown receiver {node.receiver!r} in route; configured receivers: {known}"
                )
        return self

    def retry_topics(self) -> list[str]:
        return [f"{self.topics.retry_prefix}.{i}" for i in range(self.retry.tiers)]
