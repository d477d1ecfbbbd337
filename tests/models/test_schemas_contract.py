"""Alerts as CloudEvents 1.0: what SeriesMonitor emits survives the reference SDK both ways."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from apiwatch.models.alerts import ALERT_TYPE_PREFIX, AlertEvent
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.monitor import SeriesMonitor
from tests.detection.helpers import SERIES, bucket, noisy_bucket

try:  # cloudevents 1.x
    from cloudevents.conversion import to_json
    from cloudevents.http import from_json
    from cloudevents.kafka import KafkaMessage, from_structured
except ImportError:  # cloudevents 2.x keeps the 1.x API under cloudevents.v1
    from cloudevents.v1.conversion import to_json
    from cloudevents.v1.http import from_json
    from cloudevents.v1.kafka import KafkaMessage, from_structured

SOURCE = "/apiwatch/test"
ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "datacontenttype")


@pytest.fixture(scope="module")
def events() -> list[AlertEvent]:
    """Firing, updated and resolved alerts of a real monitor: an error surge, then silence."""
    rng = np.random.default_rng(5)
    m = SeriesMonitor(DetectionConfig(), SERIES)
    out = []
    for i in range(160):
        if 100 <= i < 130:
            item = noisy_bucket(rng, i, 40, err=0.3 + 0.02 * (i - 100))
        elif 140 <= i < 150:
            item = bucket(i, 0)
        else:
            item = noisy_bucket(rng, i, 40)
        out += [e.event(SOURCE) for e in m.observe(item)]
    return out


def test_the_monitor_emits_every_transition(events: list[AlertEvent]) -> None:
    assert {e.transition for e in events} == {"firing", "updated", "resolved"}
    assert len({e.id for e in events}) == len(events)
    for e in events:
        assert e.type == ALERT_TYPE_PREFIX + e.transition
        assert e.subject == e.data.fingerprint
        assert (e.data.resolved_at is not None) is (e.transition == "resolved")


def test_structured_json_round_trips_through_the_sdk(events: list[AlertEvent]) -> None:
    for ev in events:
        raw = ev.model_dump_json()
        ce = from_json(raw)
        for name in ATTRIBUTES:
            assert ce[name] == getattr(ev, name), name
        assert ce["specversion"] == "1.0"
        assert ce.data == json.loads(raw)["data"]
        back = AlertEvent.model_validate_json(to_json(ce))
        assert back == ev


def test_kafka_structured_message_keeps_the_fingerprint_as_key(events: list[AlertEvent]) -> None:
    for ev in events:
        # As the detect stage sends them: key = fingerprint, the JSON envelope, no headers
        # (the SDK would copy a content-type header over datacontenttype).
        message = KafkaMessage(
            headers={},
            key=ev.subject.encode(),
            value=ev.model_dump_json().encode(),
        )
        ce = from_structured(message)
        assert ce["partitionkey"] == ev.data.fingerprint.encode()
        for name in ATTRIBUTES:
            assert ce[name] == getattr(ev, name), name
        assert ce.data["kind"] == ev.data.kind.value


def test_core_json_format_reads_and_writes_it_too(events: list[AlertEvent]) -> None:
    json_format = pytest.importorskip("cloudevents.core.formats.json")
    fmt = json_format.JSONFormat()
    for ev in events:
        ce = fmt.read(None, ev.model_dump_json().encode())
        attrs: dict[str, Any] = ce.get_attributes()
        for name in ATTRIBUTES:
            assert attrs[name] == getattr(ev, name), name
        assert attrs["time"] == ev.time
        assert AlertEvent.model_validate_json(fmt.write(ce)) == ev


def test_time_is_rfc3339_utc(events: list[AlertEvent]) -> None:
    for ev in events:
        wire = json.loads(ev.model_dump_json())
        assert wire["time"].endswith("Z") or wire["time"].endswith("+00:00")
        assert AlertEvent.model_validate(wire).time == ev.time
