"""Helpers for integration tests: a worker child process, and reading topics with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias, TypeVar, overload

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from apiwatch.settings import Settings
from apiwatch.streams.broker import free_port
from apiwatch.streams.kafka import assign_from_start, make_consumer
from apiwatch.streams.worker import worker_env

Record: TypeAlias = ConsumerRecord[bytes, bytes]
T = TypeVar("T")


@overload
async def eventually(
    what: str,
    check: Callable[[], Awaitable[T | None]],
    within_s: float,
    *,
    interval_s: float = ...,
    context: Callable[[], str] = ...,
    guard: Callable[[], None] = ...,
) -> T: ...


@overload
async def eventually(
    what: str,
    check: Callable[[], T | None],
    within_s: float,
    *,
    interval_s: float = ...,
    context: Callable[[], str] = ...,
    guard: Callable[[], None] = ...,
) -> T: ...


async def eventually(
    what: str,
    check: Callable[[], Any],
    within_s: float,
    *,
    interval_s: float = 0.1,
    context: Callable[[], str] = lambda: "",
    guard: Callable[[], None] = lambda: None,
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, and return that.

    The one way integration tests wait: on a condition, with a deadline. ``context``
    (a worker's log tail, the last sample...) is added to the failure at the deadline;
    ``guard`` runs before every poll and fails the wait at once by raising (a worker
    died, say).
    """
    deadline = time.monotonic() + within_s
    while True:
        guard()
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {within_s:g} s\n{context()}")
        await asyncio.sleep(interval_s)


def eventually_sync(
    what: str,
    check: Callable[[], T | None],
    within_s: float,
    *,
    interval_s: float = 0.2,
    context: Callable[[], str] = lambda: "",
    guard: Callable[[], None] = lambda: None,
) -> T:
    """:func:`eventually` for code that runs in a thread rather than on the loop."""
    deadline = time.monotonic() + within_s
    while True:
        guard()
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {within_s:g} s\n{context()}")
        time.sleep(interval_s)


class WorkerProcess:
    """``python -m apiwatch worker`` as a child process with the given settings."""

    def __init__(self, settings: Settings, state_dir: Path, *roles: str) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.roles = roles
        self.port = free_port()
        self.log_path = state_dir / f"worker-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "apiwatch", "worker", "--loglevel", "info"]
        for r in self.roles:
            cmd += ["--role", r]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=worker_env(self.settings, self.state_dir / "state", self.port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code in (200, 503) else None

    def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            h = self.health()
            return h if h and h.get("ok") else None

        def alive() -> None:
            assert self.alive, f"worker exited early:\n{self.log_tail()}"

        return eventually_sync(
            "healthy worker", healthy, timeout, context=self.log_tail, guard=alive
        )

    def stop(self, sig: str = "TERM", timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            if sig == "KILL":
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def assign_all(consumer: AIOKafkaConsumer, topic: str, within_s: float = 20.0) -> None:
    await assign_from_start(consumer, topic, within_s)


async def collect(
    settings: Settings,
    topic: str,
    done: Callable[[list[Record]], bool],
    within_s: float,
) -> list[Record]:
    """Read ``topic`` from the beginning until ``done(records)`` or the deadline."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    records: list[Record] = []
    try:
        await assign_all(consumer, topic)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            if done(records):
                return records
    finally:
        await consumer.stop()
    return records


def running_pipeline(
    kafka_bootstrap: str, tmp_path_factory: Any, *roles: str
) -> Iterator[tuple[Settings, WorkerProcess]]:
    """Fixture body: fresh topics and one worker (ingest + detect unless ``roles``)."""
    import uuid

    from apiwatch.settings import load_settings
    from apiwatch.streams.kafka import ensure_topics, topic_specs

    u = uuid.uuid4().hex[:8]
    names = ("rum", "synthetic", "otlp", "deadletter", "buckets", "alerts")
    settings = load_settings(
        overrides={
            "kafka": {"bootstrap_servers": kafka_bootstrap},
            "topics": {name: f"p{u}.{name}" for name in names} | {"partitions": 2},
            "ingest": {"group_id": f"p{u}-ingest"},
            "app": {"app_id": f"p{u}", "http_port": 0},
        }
    )
    asyncio.run(ensure_topics(settings.kafka, topic_specs(settings)))
    worker = WorkerProcess(
        settings, tmp_path_factory.mktemp("worker"), *(roles or ("ingest", "detect"))
    )
    with worker:
        worker.wait_healthy()
        yield settings, worker
        assert worker.alive, f"worker died:\n{worker.log_tail()}"
