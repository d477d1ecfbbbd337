"""Shared fixtures: a real Kafka-protocol broker for integration tests.

The broker is picked as DESIGN.md says: ``KAFKA_BOOTSTRAP_SERVERS`` if set; a
testcontainers Kafka container if a Docker engine answers; else the embedded
Tansu broker, which always works on these machines.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apiwatch.settings import Settings, load_settings
from apiwatch.streams.broker import EmbeddedBroker


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker that lives for the whole test session."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def unique() -> str:
    """A short unique suffix, so each test gets its own topics and groups."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def settings_for(kafka_bootstrap: str, unique: str, tmp_path: Any) -> Any:
    """Factory: settings pointing at the test broker with per-test topic names."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "kafka": {"bootstrap_servers": kafka_bootstrap},
            "topics": {
                "rum": f"t{unique}.rum",
                "synthetic": f"t{unique}.synthetic",
                "otlp": f"t{unique}.otlp",
                "deadletter": f"t{unique}.deadletter",
                "buckets": f"t{unique}.buckets",
                "alerts": f"t{unique}.alerts",
                "partitions": 2,
            },
            "ingest": {"group_id": f"t{unique}-ingest"},
            "app": {
                "app_id": f"t{unique}",
                "http_port": 0,
                "state_dir": str(tmp_path / "state"),
            },
        }
        for section, values in overrides.items():
            base.setdefault(section, {}).update(values)
        with contextlib.suppress(KeyError):
            os.environ.pop("APIWATCH_CONFIG")
        return load_settings(overrides=base)

    return make
