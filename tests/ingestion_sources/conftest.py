"""Fixtures shared by the ingestion-source tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apiwatch.settings import Settings
from apiwatch.streams.kafka import ensure_topics, topic_specs


@pytest.fixture
def kafka_settings(settings_for: Callable[..., Settings]) -> Callable[..., Any]:
    """Factory: per-test settings whose topics exist on the test broker."""

    async def make(**overrides: Any) -> Settings:
        settings = settings_for(**overrides)
        await ensure_topics(settings.kafka, topic_specs(settings))
        return settings

    return make
