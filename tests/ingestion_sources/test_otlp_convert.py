"""OTLP spans to RUM events: the pure converter, with payloads built by opentelemetry-proto."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from apiwatch.models.events import RumEvent
from apiwatch.models.otlp import OtlpDecodeError, detect_encoding, spans_to_rum

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def attr(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(
    attrs: dict[str, Any],
    kind: int = Span.SPAN_KIND_SERVER,
    span_id: int = 1,
    duration_ns: int = 12_500_000,
) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id.to_bytes(8, "big"),
        name="request",
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + duration_ns,
        attributes=[attr(k, v) for k, v in attrs.items()],
    )


def export(spans: list[Span], resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    res = resource if resource is not None else {"service.name": "shop"}
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[attr(k, v) for k, v in res.items()]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the Collector writes it: hex ids, integer enums."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for key in ("traceId", "spanId"):
                    s[key] = base64.b64decode(s[key]).hex()
    return orjson.dumps(data)


def encode(request: ExportTraceServiceRequest, encoding: str) -> bytes:
    return request.SerializeToString() if encoding == "otlp_proto" else to_otlp_json(request)


CURRENT = {
    "http.request.method": "POST",
    "http.route": "/users/{id}/orders",
    "url.path": "/users/42/orders",
    "http.response.status_code": 201,
    "client.address": "203.0.113.9",
    "user_agent.original": "curl/8.5",
    "server.address": "shop.example.com",
    "http.request.body.size": 120,
    "enduser.id": "u-42",
}
OLD = {
    "http.method": "get",
    "http.target": "/items/7?x=1",
    "http.status_code": 503,
    "net.peer.ip": "10.1.2.3",
    "http.user_agent": "okhttp",
}


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_server_spans_become_rum_events_in_both_encodings(encoding: str) -> None:
    request = export([span(CURRENT, span_id=1), span(OLD, span_id=2, duration_ns=3_000_000)])
    out = spans_to_rum(encode(request, encoding), encoding)  # type: ignore[arg-type]

    assert out.skipped == 0
    first, second = out.events
    assert first == {
        "timestamp": START_NS // 1_000_000,
        "service": "shop",
        "method": "POST",
        "path": "/users/42/orders",
        "route": "/users/{id}/orders",
        "status": 201,
        "duration_ms": 12.5,
        "client_ip": "203.0.113.9",
        "user_agent": "curl/8.5",
        "user_id": "u-42",
        "request_bytes": 120,
        "trace_id": TRACE_ID.hex(),
        "event_id": f"{TRACE_ID.hex()}-{(1).to_bytes(8, 'big').hex()}",
    }
    assert (second["method"], second["path"], second["status"]) == ("GET", "/items/7", 503)
    assert (second["client_ip"], second["user_agent"], second["duration_ms"]) == (
        "10.1.2.3",
        "okhttp",
        3.0,
    )
    # Each dict is a valid RUM event by the one contract the ingest stage applies.
    events = [RumEvent.model_validate(e) for e in out.events]
    assert events[1].route == "/items/{id}"


def test_auto_encoding_reads_both() -> None:
    request = export([span(CURRENT)])
    assert detect_encoding(to_otlp_json(request)) == "otlp_json"
    assert detect_encoding(request.SerializeToString()) == "otlp_proto"
    assert (
        spans_to_rum(request.SerializeToString()).events
        == spans_to_rum(to_otlp_json(request)).events
    )


def test_non_http_server_spans_are_skipped_and_counted_by_reason() -> None:
    no_client = {k: v for k, v in CURRENT.items() if k != "client.address"}
    request = export(
        [
            span(CURRENT, kind=Span.SPAN_KIND_CLIENT),
            span(CURRENT, kind=Span.SPAN_KIND_INTERNAL),
            span({"db.system": "postgresql"}),
            span({**CURRENT, "http.request.method": "_OTHER"}),
            span({k: v for k, v in CURRENT.items() if k != "http.response.status_code"}),
            span(no_client),
            span(CURRENT),
        ]
    )
    out = spans_to_rum(request.SerializeToString(), "otlp_proto")
    assert len(out.events) == 1
    assert out.skipped == 6
    assert out.skip_reasons == {
        "not_server_span": 2,
        "no_http_method": 1,
        "unknown_http_method": 1,
        "no_http_status": 1,
        "no_client_address": 1,
    }


def test_resource_environment_and_missing_service_name() -> None:
    request = export([span(CURRENT)], resource={"deployment.environment.name": "staging"})
    (event,) = spans_to_rum(request.SerializeToString()).events
    assert event["environment"] == "staging"
    # Without service.name the server the span answered for names the service.
    assert event["service"] == "shop.example.com"


def test_path_falls_back_to_the_full_url() -> None:
    attrs = {k: v for k, v in CURRENT.items() if k != "url.path"}
    attrs["url.full"] = "https://shop.example.com/users/42/orders?page=2"
    (event,) = spans_to_rum(export([span(attrs)]).SerializeToString()).events
    assert event["path"] == "/users/42/orders"


@pytest.mark.parametrize(
    ("payload", "encoding", "message"),
    [
        (b"\xff\xfe not protobuf", "otlp_proto", "not an OTLP protobuf"),
        (b'{"resourceSpans": ', "otlp_json", "not JSON"),
        (b"[1, 2]", "otlp_json", "must be an object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "otlp_json",
            "is not hex",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "yesterday"}]}]}]}',
            "otlp_json",
            "not an OTLP/JSON",
        ),
        (b'{"resourceSpans": {"oops": 1}}', "otlp_json", "expected a JSON array"),
    ],
)
def test_malformed_payloads_raise_a_clear_error(
    payload: bytes, encoding: str, message: str
) -> None:
    with pytest.raises(OtlpDecodeError, match=message):
        spans_to_rum(payload, encoding)  # type: ignore[arg-type]


def test_an_empty_export_is_not_an_error() -> None:
    assert spans_to_rum(b"{}").events == []
    assert spans_to_rum(b"").events == []
