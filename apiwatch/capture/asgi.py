"""RUM capture for ASGI applications (Starlette, FastAPI, any ASGI 3 app).

Wrap the application, or add it as a Starlette middleware::

    app.add_middleware(RumMiddleware, publisher=RumPublisher(config),
                       user_id=lambda scope: scope.get("state", {}).get("user_id"))

One RUM event per HTTP request is queued once the response is fully sent:
method, path, the route template the router matched (Starlette and FastAPI
set ``scope["route"]``), status, duration, sizes, client address, user agent,
trace id, and the user and credential ids the hooks return. Bodies, query
strings, cookies and authorization headers are never read. A hook that raises
is logged and ignored, never the request's problem.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apiwatch.capture.config import CaptureConfig
from apiwatch.capture.publisher import RumPublisher
from apiwatch.capture.recorder import Recorder, RequestFacts
from apiwatch.capture.request import route_template
from apiwatch.models.routes import template_route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeHook = Callable[[Scope], str | None]

_READ_HEADERS = frozenset({b"user-agent", b"content-length", b"traceparent"})


class RumMiddleware:
    """ASGI middleware publishing one RUM event per HTTP request (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        publisher: RumPublisher,
        user_id: ScopeHook | None = None,
        credential_id: ScopeHook | None = None,
    ) -> None:
        self.app = app
        self.recorder = Recorder(publisher, user_id, credential_id)
        self.config: CaptureConfig = publisher.config
        self._proxy_header = (self.config.client_ip_header or "").lower().encode() or None
        self._wanted = _READ_HEADERS | ({self._proxy_header} if self._proxy_header else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.config.exclude_paths:
            await self.app(scope, receive, send)
            return
        started_wall, started = time.time(), time.perf_counter()
        state = [500, 0, 0.0]  # status, response bytes, finished (perf_counter)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                state[0] = message["status"]
            elif message["type"] == "http.response.body":
                state[1] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    state[2] = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            finished = state[2] or time.perf_counter()
            self.recorder.record(
                scope, self._facts, started_wall, finished - started, int(state[0]), int(state[1])
            )

    def _facts(self, scope: Scope) -> RequestFacts:
        headers = _headers(scope, self._wanted)
        peer = scope.get("client")
        return RequestFacts(
            method=scope.get("method", "GET"),
            path=scope.get("path", "/"),
            route=_route(scope),
            peer=peer[0] if peer else None,
            proxy_header=headers.get(self._proxy_header) if self._proxy_header else None,
            user_agent=headers.get(b"user-agent"),
            content_length=headers.get(b"content-length"),
            traceparent=headers.get(b"traceparent"),
        )


def _headers(scope: Scope, wanted: frozenset[bytes]) -> dict[bytes, str]:
    """The few headers capture reads (repeated ones joined); no others are decoded."""
    out: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        lower = name.lower()
        if lower in wanted:
            text = value.decode("latin-1")
            out[lower] = f"{out[lower]}, {text}" if lower in out else text
    return out


def _route(scope: Scope) -> str | None:
    """The matched route's template, including the prefix of any mount it sits under."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    prefix = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return (template_route(prefix) if prefix else "") + route_template(path)
