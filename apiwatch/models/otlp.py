"""OTLP traces to RUM events: what the OpenTelemetry Collector's Kafka exporter writes.

The exporter writes one ``ExportTraceServiceRequest`` per message, either as
protobuf (``otlp_proto``, its default) or as OTLP/JSON (``otlp_json``). Every
SERVER span that carries the HTTP semantic conventions becomes one RUM event;
the current names (``http.request.method``, ``http.route``, ``url.path``,
``http.response.status_code``, ``client.address``, ``user_agent.original``) and
the older ones (``http.method``, ``http.target``, ``http.status_code``, …) are
both read. Other spans (clients, internal work, messaging, spans missing the
method, status, path or client address) are skipped and counted by reason.

:func:`spans_to_rum` is pure: bytes in, RUM-shaped dicts out, and
:class:`OtlpDecodeError` when the bytes are not an OTLP trace export at all.

>>> payload = b'''{"resourceSpans": [{"resource": {"attributes": [
...   {"key": "service.name", "value": {"stringValue": "shop"}}]},
...   "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",
...     "spanId": "eee19b7ec3c1b174", "name": "GET /users/{id}", "kind": 2,
...     "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225600012500000",
...     "attributes": [
...       {"key": "http.request.method", "value": {"stringValue": "GET"}},
...       {"key": "http.route", "value": {"stringValue": "/users/{id}"}},
...       {"key": "url.path", "value": {"stringValue": "/users/42"}},
...       {"key": "http.response.status_code", "value": {"intValue": "200"}},
...       {"key": "client.address", "value": {"stringValue": "10.0.0.1"}}]}]}]}]}'''
>>> out = spans_to_rum(payload, "otlp_json")
>>> e = out.events[0]
>>> e["service"], e["method"], e["route"], e["status"], e["duration_ms"], out.skipped
('shop', 'GET', '/users/{id}', 200, 12.5, 0)
"""

from __future__ import annotations

import base64
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from apiwatch.models.events import HTTP_METHODS
from apiwatch.models.otlp_config import Encoding

ENCODINGS: tuple[Encoding, ...] = ("otlp_proto", "otlp_json")

# Each field is read from the first attribute present, current semantic
# conventions first, then the names older instrumentations still emit.
_METHOD = ("http.request.method", "http.method")
_STATUS = ("http.response.status_code", "http.status_code")
_PATH = ("url.path", "http.target")
_URL = ("url.full", "http.url")
_ROUTE = ("http.route",)
_CLIENT = (
    "client.address",
    "http.client_ip",
    "network.peer.address",
    "net.sock.peer.addr",
    "net.peer.ip",
)
_USER_AGENT = ("user_agent.original", "http.user_agent")
_REQUEST_BYTES = ("http.request.body.size", "http.request_content_length")
_RESPONSE_BYTES = ("http.response.body.size", "http.response_content_length")
_USER = ("enduser.id",)
_ENVIRONMENT = ("deployment.environment.name", "deployment.environment")


class OtlpDecodeError(ValueError):
    """The payload is not an OTLP trace export in the stated encoding."""


@dataclass
class Conversion:
    """The RUM events of one payload, and the spans that were not HTTP server spans."""

    events: list[dict[str, Any]] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return sum(self.skip_reasons.values())


def detect_encoding(payload: bytes) -> Encoding:
    """Tell OTLP/JSON from protobuf by the first non-blank byte.

    A protobuf ``ExportTraceServiceRequest`` starts with field 1's tag (0x0A); a
    ``{`` would be the tag of a protobuf group, which that message never holds.

    >>> detect_encoding(b' {"resourceSpans": []}'), detect_encoding(b"\\x0a\\x00")
    ('otlp_json', 'otlp_proto')
    """
    return "otlp_json" if payload.lstrip()[:1] == b"{" else "otlp_proto"


def decode(payload: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Parse one exporter message; raise :class:`OtlpDecodeError` if it is not one."""
    request = ExportTraceServiceRequest()
    if encoding == "otlp_proto":
        try:
            request.ParseFromString(payload)
        except DecodeError as exc:
            raise OtlpDecodeError(f"not an OTLP protobuf trace export: {exc}") from exc
        return request
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OtlpDecodeError("OTLP/JSON payload must be an object with resourceSpans")
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise OtlpDecodeError(f"not an OTLP/JSON trace export: {exc}") from exc
    return request


def _hex_ids_to_base64(data: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON writes trace and span ids as hex, protobuf's JSON mapping wants base64.

    Without this, hex ids would still parse (hex digits are base64 characters)
    but decode to the wrong bytes, so the fix-up is done before parsing.
    """
    for resource_spans in _list(data.get("resourceSpans")):
        for scope_spans in _list(_dict(resource_spans).get("scopeSpans")):
            for span in _list(_dict(scope_spans).get("spans")):
                span = _dict(span)
                _rewrite_ids(span)
                for link in _list(span.get("links")):
                    _rewrite_ids(_dict(link))
    return data


def _rewrite_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise OtlpDecodeError(f"{key} {value[:40]!r} is not hex") from exc


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(f"expected a JSON array, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OtlpDecodeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def spans_to_rum(payload: bytes, encoding: Encoding | Literal["auto"] = "auto") -> Conversion:
    """Convert one exporter message into RUM-event dicts (see the module doc)."""
    if encoding == "auto":
        encoding = detect_encoding(payload)
    request = decode(payload, encoding)
    out = Conversion()
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                event_or_reason = span_to_rum(span, resource)
                if isinstance(event_or_reason, str):
                    out.skip_reasons[event_or_reason] += 1
                else:
                    out.events.append(event_or_reason)
    return out


def span_to_rum(span: Span, resource: dict[str, Any]) -> dict[str, Any] | str:
    """One span as a RUM-event dict, or the reason it is not an HTTP server span."""
    if span.kind != Span.SPAN_KIND_SERVER:
        return "not_server_span"
    attrs = _attributes(span.attributes)
    method = _first(attrs, _METHOD)
    if not isinstance(method, str):
        return "no_http_method"
    method = method.upper()
    if method not in HTTP_METHODS:
        return "unknown_http_method"
    status = _as_int(_first(attrs, _STATUS))
    if status is None or not 100 <= status <= 599:
        return "no_http_status"
    path = _path(attrs)
    if path is None:
        return "no_url_path"
    client_ip = _client_ip(attrs)
    if client_ip is None:
        return "no_client_address"
    if span.end_time_unix_nano < span.start_time_unix_nano or not span.start_time_unix_nano:
        return "invalid_span_time"

    service = resource.get("service.name")
    if not isinstance(service, str) or not service or service.startswith("unknown_service"):
        service = attrs.get("server.address") or service or "unknown_service"
    event: dict[str, Any] = {
        "timestamp": span.start_time_unix_nano // 1_000_000,
        "service": str(service),
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "client_ip": client_ip,
    }
    environment = _first(resource, _ENVIRONMENT)
    if isinstance(environment, str) and environment:
        event["environment"] = environment
    optional: dict[str, Any] = {
        "route": _first(attrs, _ROUTE),
        "user_agent": _first(attrs, _USER_AGENT),
        "user_id": _first(attrs, _USER),
        "request_bytes": _as_int(_first(attrs, _REQUEST_BYTES)),
        "response_bytes": _as_int(_first(attrs, _RESPONSE_BYTES)),
    }
    event.update({k: v for k, v in optional.items() if v is not None and v != ""})
    if span.trace_id:
        event["trace_id"] = span.trace_id.hex()
        # Trace and span id together identify the call, so a replayed export
        # yields the same event id and downstream dedup can recognise it.
        event["event_id"] = f"{span.trace_id.hex()}-{span.span_id.hex()}"
    return event


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, which)


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            return value
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _path(attrs: dict[str, Any]) -> str | None:
    path = _first(attrs, _PATH)
    if not isinstance(path, str) or not path:
        url = _first(attrs, _URL)
        if not isinstance(url, str) or "://" not in url:
            return None
        rest = url.split("://", 1)[1]
        slash = rest.find("/")
        path = rest[slash:] if slash >= 0 else "/"
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path if path.startswith("/") else None


def _client_ip(attrs: dict[str, Any]) -> str | None:
    for name in _CLIENT:
        value = attrs.get(name)
        if isinstance(value, str):
            try:
                return str(ipaddress.ip_address(value))
            except ValueError:
                continue
    return None
