"""RUM capture for WSGI applications (Flask, Django, any PEP 3333 app).

Flask, in one line (it also records the matched ``url_rule`` as the route)::

    install_flask(app, RumPublisher(config), user_id=lambda environ: environ.get("app.user"))

Django: wrap ``application`` in ``wsgi.py`` with :class:`RumWsgiMiddleware`
and add ``"apiwatch.capture.wsgi.DjangoRouteMiddleware"`` to ``MIDDLEWARE`` so
the resolved URL pattern becomes the route. Any other framework can put the
template in ``environ["apiwatch.route"]``.

The event is queued when the server closes the response iterable, that is
after the body was sent, so the duration covers streaming responses too.
Hooks receive the WSGI environ; bodies, query strings, cookies and
authorization headers are never read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from apiwatch.capture.config import CaptureConfig
from apiwatch.capture.publisher import RumPublisher
from apiwatch.capture.recorder import Recorder, RequestFacts
from apiwatch.capture.request import route_template

#: The environ key where a framework integration leaves the matched route template.
ROUTE_KEY = "apiwatch.route"

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
EnvironHook = Callable[[Environ], str | None]


class RumWsgiMiddleware:
    """WSGI middleware publishing one RUM event per request (see the module doc)."""

    def __init__(
        self,
        app: WSGIApp,
        publisher: RumPublisher,
        user_id: EnvironHook | None = None,
        credential_id: EnvironHook | None = None,
    ) -> None:
        self.app = app
        self.recorder = Recorder(publisher, user_id, credential_id)
        self.config: CaptureConfig = publisher.config
        header = self.config.client_ip_header
        self._proxy_key = "HTTP_" + header.upper().replace("-", "_") if header else None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in self.config.exclude_paths:
            return self.app(environ, start_response)
        started_wall, started = time.time(), time.perf_counter()
        status = [500]

        def watch(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = int(status_line[:3])
            return start_response(status_line, headers, exc_info)

        def done(sent: int) -> None:
            duration = time.perf_counter() - started
            self.recorder.record(environ, self._facts, started_wall, duration, status[0], sent)

        try:
            body = self.app(environ, watch)
        except BaseException:
            done(0)
            raise
        return _Watched(body, done)

    def _facts(self, environ: Environ) -> RequestFacts:
        return RequestFacts(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/"),
            route=environ.get(ROUTE_KEY),
            peer=environ.get("REMOTE_ADDR"),
            proxy_header=environ.get(self._proxy_key) if self._proxy_key else None,
            user_agent=environ.get("HTTP_USER_AGENT"),
            content_length=environ.get("CONTENT_LENGTH"),
            traceparent=environ.get("HTTP_TRACEPARENT"),
        )


class _Watched:
    """The response iterable, counting bytes and reporting once the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self._body = body
        self._done: Callable[[int], None] | None = done
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done(self._sent)


def install_flask(
    app: Any,
    publisher: RumPublisher,
    user_id: EnvironHook | None = None,
    credential_id: EnvironHook | None = None,
) -> None:
    """Capture a Flask app: wrap its WSGI app and record each request's ``url_rule``."""
    from flask import request

    def record_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = route_template(rule.rule)

    app.before_request(record_route)
    app.wsgi_app = RumWsgiMiddleware(app.wsgi_app, publisher, user_id, credential_id)


class DjangoRouteMiddleware:
    """Django middleware: leaves the resolved URL pattern in the environ as the route.

    Django's ``request.META`` is the WSGI environ, so :class:`RumWsgiMiddleware`
    around the Django application reads it after the response.

    >>> class Match: route = "users/<int:pk>/"
    >>> class Req: META = {}; resolver_match = Match()
    >>> mw = DjangoRouteMiddleware(lambda request: "response")
    >>> mw(Req()), Req.META[ROUTE_KEY]
    ('response', '/users/{pk}/')
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if isinstance(route, str) and route:
            request.META[ROUTE_KEY] = route_template("/" + route.lstrip("^").rstrip("$"))
        return response
