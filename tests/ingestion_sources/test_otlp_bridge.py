"""The OTLP bridge against the real broker: exporter messages in, RUM events and dead letters out."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from apiwatch.models.deadletter import DeadLetter
from apiwatch.models.events import RumEvent
from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_consumer, make_producer
from apiwatch.streams.otlp_bridge import run_otlp_bridge

from .helpers import read_topic
from .test_otlp_convert import CURRENT, OLD, export, span, to_otlp_json

pytestmark = pytest.mark.integration


def _skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("apiwatch_otlp_spans_total", {"outcome": reason}) or 0.0


async def test_bridge_turns_both_encodings_into_rum_events_and_dead_letters_garbage(
    kafka_settings: Callable[..., Any], unique: str
) -> None:
    settings = await kafka_settings(otlp={"group_id": f"t{unique}-otlp"})
    proto = export([span(CURRENT, span_id=1), span({"db.system": "redis"}, span_id=2)])
    json_payload = export(
        [span(OLD, span_id=3)], resource={"service.name": "legacy", "deployment.environment": "qa"}
    )
    garbage = b"\x00\xffthis is not OTLP"
    skipped_before = _skipped("no_http_method")

    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for value in (proto.SerializeToString(), to_otlp_json(json_payload), garbage):
            await producer.send_and_wait(settings.topics.otlp, value, key=b"k")
    finally:
        await producer.stop()

    stop = asyncio.Event()
    bridge = asyncio.create_task(run_otlp_bridge(settings, stop))
    try:
        rum = await read_topic(settings, settings.topics.rum, expected=2, timeout_s=30)
        dead = await read_topic(settings, settings.topics.deadletter, expected=1)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(bridge, 15)

    events = sorted((RumEvent.model_validate_json(r.value) for r in rum), key=lambda e: e.service)
    assert [(e.service, e.environment, e.method, e.route, e.status) for e in events] == [
        ("legacy", "qa", "GET", "/items/{id}", 503),
        ("shop", "production", "POST", "/users/{id}/orders", 201),
    ]
    assert sorted(r.key for r in rum) == [b"legacy", b"shop"]  # keyed by service

    (letter,) = [DeadLetter.model_validate_json(r.value) for r in dead]
    assert letter.original_bytes() == garbage
    assert letter.origin.topic == settings.topics.otlp
    assert letter.origin.key_b64 == base64.b64encode(b"k").decode()
    assert "OTLP" in letter.detail
    assert _skipped("no_http_method") == skipped_before + 1
    assert bridge.done() and bridge.exception() is None
    assert await _committed(settings) == 3  # every exporter message, dead letter included


async def _committed(settings: Settings) -> int:
    consumer = make_consumer(settings.kafka, group_id=settings.otlp.group_id)
    await consumer.start()
    try:
        total = 0
        for p in range(settings.topics.partitions):
            total += await consumer.committed(TopicPartition(settings.topics.otlp, p)) or 0
        return total
    finally:
        await consumer.stop()
