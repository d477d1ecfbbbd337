"""Framework-free pieces of a RUM event: client address, route templates, trace id.

>>> client_address("198.51.100.7, 10.0.0.2", fallback="10.0.0.9", hops=1)
'10.0.0.2'
>>> client_address("198.51.100.7, 10.0.0.2", fallback="10.0.0.9", hops=2)
'198.51.100.7'
>>> client_address("not-an-ip", fallback="10.0.0.9", hops=1)
'10.0.0.9'
>>> route_template("/users/<int:user_id>/files/<path:name>"), route_template("/a/{id:int}")
('/users/{user_id}/files/{name}', '/a/{id}')
>>> trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
'4bf92f3577b34da6a3ce929d0e0e4736'
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from typing import Any

#: Placeholder address when the server gives none (a unix socket, say).
UNKNOWN_CLIENT = "0.0.0.0"

_FLASK_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_TYPED_PARAM = re.compile(r"\{([^}:]+):[^}]*\}")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def client_address(header: str | None, fallback: str | None, hops: int) -> str:
    """The client's address: ``hops`` entries from the right of a proxy header, else the peer."""
    if header:
        parts = [p.strip() for p in header.split(",")]
        if len(parts) >= hops:
            candidate = _valid_ip(parts[-hops])
            if candidate is not None:
                return candidate
    return _valid_ip(fallback) or UNKNOWN_CLIENT


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def route_template(rule: str) -> str:
    """A framework's route rule in apiwatch's ``{name}`` style (Flask, Django, Starlette)."""
    return _TYPED_PARAM.sub(r"{\1}", _FLASK_PARAM.sub(r"{\1}", rule))


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header, so RUM events join traces."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else None


def as_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def build_event(
    *,
    service: str,
    environment: str,
    started: float,
    duration_s: float,
    method: str,
    path: str,
    route: str | None,
    status: int,
    client_ip: str,
    user_agent: str | None,
    request_bytes: int | None,
    response_bytes: int,
    trace_id: str | None,
    user_id: str | None,
    credential_id: str | None,
) -> dict[str, Any]:
    """The RUM-event dict; optional fields only when known (no request or response bodies)."""
    event: dict[str, Any] = {
        "timestamp": int(started * 1000),
        "service": service,
        "environment": environment,
        "method": method,
        "path": path or "/",
        "status": status,
        "duration_ms": round(duration_s * 1000.0, 3),
        "client_ip": client_ip,
        "response_bytes": response_bytes,
    }
    optional = {
        "route": route,
        "user_agent": user_agent[:1024] if user_agent else None,
        "request_bytes": request_bytes,
        "trace_id": trace_id,
        "user_id": user_id,
        "credential_id": credential_id,
    }
    event.update({k: v for k, v in optional.items() if v is not None})
    return event


def now() -> tuple[float, float]:
    """Wall-clock start (event time) and a monotonic start (duration)."""
    return time.time(), time.perf_counter()


def credential_hash(secret: str | None) -> str | None:
    """A stable id for an API key or token, for ``credential_id`` hooks: never the secret.

    >>> credential_hash("Bearer s3cr3t-token")
    'sha256:fb07916a0e7daf7f'
    """
    if not secret:
        return None
    token = secret.split(" ", 1)[1] if secret.lower().startswith("bearer ") else secret
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]
