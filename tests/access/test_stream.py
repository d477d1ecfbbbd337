"""Through the real broker: ingest with the access extension, the Faust access-detect stage.

One pipeline (its own topics and groups) runs for the whole module: the
ingest stage as a task, the Faust app in the same event loop. The traffic is
ordinary clients plus a brute force, a distributed credential stuffing and an
enumeration; each test checks one of them came out as one alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import TopicPartition

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.alerts import AlertEvent
from apiwatch.settings import Settings, load_settings
from apiwatch.streams.access import AccessExtension, access_topic_specs
from apiwatch.streams.access_detect import AccessDetectStage
from apiwatch.streams.faust_app import build_app
from apiwatch.streams.ingest import IngestStage
from apiwatch.streams.kafka import ensure_topics, make_consumer, make_producer, topic_specs
from apiwatch.streams.metrics import Health, Metrics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BRUTE = "192.0.2.10"
ENUM = "192.0.2.20"
EXPECTED = {("brute_force", BRUTE), ("enumeration", ENUM), ("credential_stuffing", "/login")}


def _settings(bootstrap: str, tmp: Path) -> Settings:
    u = uuid.uuid4().hex[:8]
    names = {
        k: f"a{u}.{k}" for k in ("rum", "synthetic", "otlp", "deadletter", "buckets", "alerts")
    }
    return load_settings(
        overrides={
            "kafka": {"bootstrap_servers": bootstrap},
            "topics": {**names, "partitions": 2},
            "ingest": {"group_id": f"a{u}-ingest"},
            "app": {"app_id": f"a{u}", "http_port": 0, "state_dir": str(tmp / "state")},
            "access": {"topic": f"a{u}.access", "model": {"enabled": False}},
        }
    )


def _event(t_ms: int, **kw: Any) -> dict[str, Any]:
    base = {"timestamp": t_ms, "service": "shop", "method": "GET", "path": "/products/1",
            "status": 200, "duration_ms": 12.0, "client_ip": "198.51.100.1"}  # fmt: skip
    return {**base, **kw}


def _traffic(t0: int) -> list[dict[str, Any]]:
    out = []
    for c in range(40):  # ordinary clients, 12 minutes
        ip, user = f"203.0.113.{c + 1}", f"user{c}"
        for s in range(c % 10, 720, 10):
            out.append(_event(t0 + s * 1000, client_ip=ip, user_id=user, path=f"/products/{s % 7}"))
            if s % 120 < 10:
                out.append(_event(t0 + s * 1000 + 50, service="auth", method="POST", path="/login",
                                  status=200 if (c + s) % 9 else 401, client_ip=ip, user_id=user))  # fmt: skip
    for i in range(30):  # brute force on one account
        out.append(_event(t0 + (300 + i) * 1000, service="auth", method="POST", path="/login",
                          status=401, client_ip=BRUTE, user_id="admin"))  # fmt: skip
    for i in range(600):  # distributed stuffing: 300 IPs, 2 accounts each, over 10 minutes
        out.append(_event(t0 + 100_000 + i * 1000, service="auth", method="POST", path="/login",
                          status=401, client_ip=f"10.{i // 250}.{i % 250}.9", user_id=f"leaked{i}"))  # fmt: skip
    for i in range(40):  # enumeration: walking order ids, most refused
        out.append(_event(t0 + (400 + i) * 1000, path=f"/orders/{5000 + i}",
                          status=404 if i % 3 else 200, client_ip=ENUM))  # fmt: skip
    return sorted(out, key=lambda e: e["timestamp"])


async def _read_alerts(
    settings: Settings, until: set[tuple[str, str]], timeout_s: float
) -> list[AlertEvent]:
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        parts = [
            TopicPartition(settings.topics.alerts, p) for p in range(settings.topics.partitions)
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[AlertEvent] = []
        deadline = time.monotonic() + timeout_s
        # Read until the expected alerts are in (never "until the end offset": the
        # embedded broker reports it short), then a little longer for duplicates.
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(AlertEvent.model_validate_json(r.value) for r in records)
            if until <= _fired(out):
                deadline = min(deadline, time.monotonic() + 3)
        return out
    finally:
        await consumer.stop()


def _firing(alerts: list[AlertEvent], kind: str) -> list[AlertEvent]:
    return [a for a in alerts if a.transition == "firing" and a.data.kind.value == kind]


def _fired(alerts: list[AlertEvent]) -> set[tuple[str, str]]:
    return {
        (a.data.kind.value, a.data.labels.get("client") or a.data.labels.get("route", ""))
        for a in alerts
        if a.transition == "firing"
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alerts(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[AlertEvent]]:
    settings = _settings(kafka_bootstrap, tmp_path_factory.mktemp("access"))
    await ensure_topics(settings.kafka, topic_specs(settings) + access_topic_specs(settings))
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        t0 = int(time.time() * 1000) - 900_000
        for e in _traffic(t0):
            await producer.send(settings.topics.rum, orjson.dumps(e), key=e["service"].encode())
        await producer.flush()
    finally:
        await producer.stop()

    metrics, health = Metrics(), Health()
    app = build_app(settings, kafka_bootstrap)
    stage = AccessDetectStage(app, settings, metrics, health)
    extension = AccessExtension(settings, gc_tuning=False)
    ingest = IngestStage(settings, metrics, health, extensions=[extension])
    stop = asyncio.Event()
    await app.start()
    task = asyncio.create_task(ingest.run(stop))
    try:
        yield await _read_alerts(settings, EXPECTED, timeout_s=60)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)
        await app.stop()
    assert stage.processed > 0 and extension.stats.client_records > 0


async def test_brute_force_through_the_broker(alerts: list[AlertEvent]) -> None:
    (alert,) = [a for a in _firing(alerts, "brute_force") if a.data.labels["client"] == BRUTE]
    assert alert.data.labels["client_kind"] == "ip"
    assert alert.data.evidence.details["login_failures"] >= AccessConfig().brute_force.min_failures
    assert alert.data.evidence.sample_event_ids


async def test_distributed_stuffing_through_the_broker(alerts: list[AlertEvent]) -> None:
    (alert,) = _firing(alerts, "credential_stuffing")
    assert alert.data.labels["route"] == "/login" and alert.data.labels["service"] == "auth"
    assert alert.data.evidence.details["distinct_ips"] >= 5
    assert alert.data.evidence.top_offenders


async def test_enumeration_through_the_broker(alerts: list[AlertEvent]) -> None:
    (alert,) = _firing(alerts, "enumeration")
    assert alert.data.labels["client"] == ENUM and alert.data.labels["route"] == "/orders/{id}"
    assert alert.data.evidence.details["distinct_ids"] >= 30


async def test_ordinary_clients_raise_nothing(alerts: list[AlertEvent]) -> None:
    assert _fired(alerts) <= EXPECTED | {("brute_force", "admin")}
