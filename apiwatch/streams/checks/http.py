"""One HTTP call of a check with httpx, timed per phase through httpcore's trace extension.

httpcore reports when it connects, negotiates TLS, sends the request and
receives headers and body; the gaps between those events are the phases.
Name resolution happens inside httpcore's TCP connect and is not reported on
its own, so ``dns`` stays empty and ``connect`` includes it. A reused
connection has no connect or TLS phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from apiwatch.models.checks.response import Response
from apiwatch.models.events import PhaseTimings


@dataclass(frozen=True)
class Request:
    """A step with its variables already filled in."""

    method: str
    url: str
    headers: dict[str, str]
    json_body: Any = None
    body: str | None = None
    timeout_s: float = 10.0
    follow_redirects: bool = True


@dataclass(frozen=True)
class Outcome:
    """What came back: a response, or an error (``timed_out`` when it was a timeout)."""

    duration_ms: float
    response: Response | None = None
    timings: PhaseTimings | None = None
    error: str | None = None
    timed_out: bool = False


class PhaseClock:
    """Collects httpcore trace events; ``phases()`` turns them into timings."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    async def trace(self, event_name: str, info: dict[str, Any]) -> None:
        # "http11.receive_response_headers.complete" and the http2 twin share a key.
        layer, _, rest = event_name.partition(".")
        key = rest if layer in ("http11", "http2") else event_name
        # Last one wins: after a redirect, the phases describe the final request.
        self.marks[key] = time.perf_counter()

    def _span(self, start: str, end: str) -> float | None:
        a, b = self.marks.get(start), self.marks.get(end)
        return None if a is None or b is None else max(0.0, (b - a) * 1000.0)

    def phases(self) -> PhaseTimings:
        sent = "send_request_body.complete"
        if sent not in self.marks:
            sent = "send_request_headers.complete"
        return PhaseTimings(
            connect=self._span("connection.connect_tcp.started", "connection.connect_tcp.complete"),
            tls=self._span("connection.start_tls.started", "connection.start_tls.complete"),
            ttfb=self._span(sent, "receive_response_headers.complete"),
            transfer=self._span("receive_response_body.started", "receive_response_body.complete"),
        )


async def execute(client: httpx.AsyncClient, request: Request) -> Outcome:
    """Send one request; never raises for network trouble, it is part of the outcome."""
    clock = PhaseClock()
    started = time.perf_counter()
    try:
        reply = await client.request(
            request.method,
            request.url,
            headers=request.headers,
            json=request.json_body,
            content=request.body,
            timeout=request.timeout_s,
            follow_redirects=request.follow_redirects,
            extensions={"trace": clock.trace},
        )
    except httpx.TimeoutException as exc:
        return Outcome(
            duration_ms=_ms_since(started),
            timings=clock.phases(),
            error=f"timed out after {request.timeout_s:g} s ({type(exc).__name__})",
            timed_out=True,
        )
    except httpx.HTTPError as exc:
        return Outcome(
            duration_ms=_ms_since(started),
            timings=clock.phases(),
            error=f"{type(exc).__name__}: {exc}",
        )
    duration = _ms_since(started)
    response = Response(
        status_code=reply.status_code,
        headers=list(reply.headers.items()),
        text=reply.text,
        elapsed_ms=duration,
    )
    return Outcome(duration_ms=duration, response=response, timings=clock.phases())


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
