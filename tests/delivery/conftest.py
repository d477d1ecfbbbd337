"""Fixtures for the delivery tests: fast, per-test delivery settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apiwatch.settings import Settings

from .helpers import Recorder, recorder


@pytest.fixture
def http_recorder() -> Iterator[Recorder]:
    with recorder() as rec:
        yield rec


@pytest.fixture
def delivery_settings(
    settings_for: Callable[..., Settings], unique: str
) -> Callable[..., Settings]:
    """Factory: settings with per-test delivery topics and fast timings.

    Backoff starts at 0.2 s so retries happen within a test; groups wait 0.3 s. The
    session timeout is 4 s: the embedded broker stalls a group's first join for about
    half of it, and a killed worker's member is dropped after all of it.
    ``route`` keys replace the root route's, and ``routes`` defaults to none so the
    example tree of the packaged config never applies.
    """

    def make(
        receivers: dict[str, Any],
        route: dict[str, Any],
        retry: dict[str, Any] | None = None,
        **delivery: Any,
    ) -> Settings:
        config: dict[str, Any] = {
            "group_id": f"t{unique}-deliver",
            "tick_s": 0.05,
            "topics": {
                "routed": f"t{unique}.n.routed",
                "retry_prefix": f"t{unique}.n.retry",
                "dlq": f"t{unique}.n.dlq",
                "silences": f"t{unique}.n.silences",
                "log": f"t{unique}.n.log",
            },
            "retry": {
                "base_delay_s": 0.2,
                "factor": 2.0,
                "max_delay_s": 2.0,
                "jitter": 0.1,
                "tiers": 2,
                "max_attempts": 4,
                **(retry or {}),
            },
            "api": {"port": 0},
            "receivers": receivers,
            "route": {
                "group_by": ["service"],
                "group_wait_s": 0.3,
                "group_interval_s": 0.5,
                "repeat_interval_s": 3600,
                "routes": [],
                **route,
            },
            "inhibit_rules": [],
            **delivery,
        }
        return settings_for(delivery=config, kafka={"session_timeout_s": 4.0})

    return make
