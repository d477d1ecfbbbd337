"""Helpers for the delivery tests: a real HTTP server that records requests, alert
factories, a worker runner, and group-less topic reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apiwatch.models.alerts import (
    Alert,
    AlertEvent,
    AlertKind,
    AlertStatus,
    Expected,
    Observed,
    Severity,
    fingerprint,
)
from apiwatch.settings import Settings
from apiwatch.streams.deliver import DeliveryWorker
from apiwatch.streams.deliver.tail import TopicTail
from apiwatch.streams.kafka import ensure_topics, make_producer, topic_specs

DEADLINE_S = 30.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that records every request and answers as scripted.

    ``script(path, 503, 503)`` answers the next two requests to ``path`` with 503;
    ``fail(path, 503)`` answers every request to it with 503 until ``recover(path)``.
    """

    requests: list[Recorded] = field(default_factory=list)
    _scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    _always: dict[str, int] = field(default_factory=dict)
    _stall: threading.Event = field(default_factory=threading.Event)
    _stalled_paths: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status, headers = recorder._answer(self.path)
                with recorder._lock:
                    recorder.requests.append(
                        Recorded(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                        )
                    )
                if self.path in recorder._stalled_paths:
                    recorder._stall.wait(10)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stall.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, path: str) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}{path}"

    def script(self, path: str, *answers: int | tuple[int, dict[str, str]]) -> None:
        with self._lock:
            queue = self._scripts.setdefault(path, [])
            for answer in answers:
                queue.append(answer if isinstance(answer, tuple) else (answer, {}))

    def fail(self, path: str, status: int) -> None:
        with self._lock:
            self._always[path] = status

    def stall(self, path: str) -> None:
        """Hold requests to ``path`` unanswered (recorded at once) until ``unstall`` or stop."""
        self._stalled_paths.add(path)

    def unstall(self) -> None:
        self._stall.set()

    def recover(self, path: str) -> None:
        with self._lock:
            self._always.pop(path, None)

    def _answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self._lock:
            queue = self._scripts.get(path)
            if queue:
                return queue.pop(0)
            return self._always.get(path, 200), {}

    def at(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    async def wait_for(
        self, path: str, predicate: Callable[[list[Recorded]], bool], timeout_s: float = DEADLINE_S
    ) -> list[Recorded]:
        """Poll until ``predicate(requests to path)`` holds; fail with what was seen."""
        await until(
            lambda: predicate(self.at(path)), timeout_s, lambda: f"{path}: {self.at(path)!r}"
        )
        return self.at(path)


async def until(
    condition: Callable[[], bool],
    timeout_s: float = DEADLINE_S,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Wait for ``condition`` with a deadline (the one place tests sleep: between polls)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s {describe()}")
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def recorder() -> Iterator[Recorder]:
    rec = Recorder().start()
    try:
        yield rec
    finally:
        rec.stop()


def alert_event(
    labels: dict[str, str],
    kind: AlertKind = AlertKind.LATENCY_SPIKE,
    status: AlertStatus = AlertStatus.FIRING,
    severity: Severity = Severity.ERROR,
) -> AlertEvent:
    """An alert event as the detect stage emits it (fingerprint from kind and labels)."""
    alert = Alert(
        fingerprint=fingerprint(kind.value, labels),
        kind=kind,
        status=status,
        severity=severity,
        summary=f"{kind.value} on {labels.get('route', '?')}",
        labels=labels,
        observed=Observed(value=900.0, unit="ms", window_s=60.0, sample_size=200),
        expected=Expected(value=120.0, lower=80.0, upper=200.0),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        resolved_at=datetime.now(tz=UTC) if status is AlertStatus.RESOLVED else None,
        sources=["rum"],
    )
    return AlertEvent.emit(alert, transition=status.value, source="/apiwatch/test")


async def produce_alerts(settings: Settings, *events: AlertEvent) -> None:
    await ensure_topics(settings.kafka, topic_specs(settings))
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                settings.topics.alerts,
                key=event.subject.encode(),
                value=event.model_dump_json().encode(),
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[DeliveryWorker, asyncio.Task[None]]]:
    """A delivery worker in a task; stopped (gracefully) on exit unless already done."""
    worker = DeliveryWorker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: worker.started.is_set() or task.done())
        if task.done():
            task.result()
        yield worker, task
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, DEADLINE_S)
        elif not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def kill(task: asyncio.Task[None]) -> None:
    """Stop a worker the hard way: cancel it mid-flight, nothing graceful asked for."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TopicReader:
    """Reads a topic group-less from the beginning; ``records`` grows as it polls."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.values: list[bytes] = []
        self._tail = TopicTail(settings, topic, lambda r: self.values.append(r.value))

    async def wait_for(
        self, predicate: Callable[[list[Any]], bool], timeout_s: float = DEADLINE_S
    ) -> list[Any]:
        """Poll until ``predicate(decoded JSON values)`` holds."""
        if not self._tail.partitions:
            await self._tail.start()
        deadline = time.monotonic() + timeout_s
        while not predicate(self.decoded()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self._tail.topic}: condition not met; saw {self.decoded()!r}"
                )
            await self._tail.poll(100)
        return self.decoded()

    def decoded(self) -> list[Any]:
        return [json.loads(v) for v in self.values if v]

    async def close(self) -> None:
        await self._tail.stop()


@contextlib.asynccontextmanager
async def reading(settings: Settings, topic: str) -> AsyncIterator[TopicReader]:
    reader = TopicReader(settings, topic)
    try:
        yield reader
    finally:
        await reader.close()
