"""RUM capture in real ASGI (uvicorn + Starlette) and WSGI (werkzeug + Flask) servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import orjson
import pytest

from apiwatch.capture import CaptureConfig, RumPublisher, credential_hash
from apiwatch.models.events import RumEvent
from apiwatch.settings import KafkaConfig, Settings
from apiwatch.streams.broker import free_port

from .helpers import read_topic, wait_until
from .servers import load_example, serve_asgi, serve_wsgi

example = load_example()
KINDS = {
    "asgi": (example.make_asgi_app, serve_asgi, "/users/{user_id}"),
    "wsgi": (example.make_wsgi_app, serve_wsgi, "/users/{user_id}"),
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Recording(RumPublisher):
    """A publisher that keeps events in a list: for checking content without Kafka."""

    def __init__(self, config: CaptureConfig) -> None:
        super().__init__(config)
        self.events: list[dict[str, Any]] = []

    def submit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def serve(kind: str, publisher: RumPublisher) -> AbstractContextManager[str]:
    make_app, server, _ = KINDS[kind]
    return server(make_app(publisher))  # type: ignore[no-any-return]


def config(kafka: KafkaConfig, topic: str = "t", **values: Any) -> CaptureConfig:
    return CaptureConfig(
        service="example-api",
        kafka=kafka,
        topic=topic,
        client_ip_header="x-forwarded-for",
        exclude_paths=frozenset({"/health"}),
        **values,
    )


def journey(base: str) -> tuple[str, list[int]]:
    """Log in, read a profile, miss a profile, check health; return the token and statuses."""
    with httpx.Client(base_url=base, timeout=10) as client:
        login = client.post("/login", json={"user": "alice", "password": example.PASSWORD})
        token = login.json()["token"]
        auth = {"authorization": f"Bearer {token}", "x-forwarded-for": "198.51.100.7, 10.0.0.2"}
        ok = client.get(
            "/users/1", headers={**auth, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
        )
        missing = client.get("/users/99", headers=auth)
        health = client.get("/health")
    return token, [login.status_code, ok.status_code, missing.status_code, health.status_code]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_one_rum_event_per_request_reaches_kafka(
    kind: str, kafka_settings: Callable[..., Any]
) -> None:
    settings: Settings = await kafka_settings()
    publisher = RumPublisher(config(settings.kafka, settings.topics.rum))
    try:
        with serve(kind, publisher) as base:
            token, statuses = await asyncio.to_thread(journey, base)
        assert statuses == [200, 200, 404, 200]
        records = await read_topic(settings, settings.topics.rum, expected=3)
    finally:
        await asyncio.to_thread(publisher.close)

    assert {r.key for r in records} == {b"example-api"}  # keyed by service
    raw = b"".join(r.value for r in records)
    assert token.encode() not in raw and example.PASSWORD.encode() not in raw  # never secrets
    events = sorted((orjson.loads(r.value) for r in records), key=lambda e: e["path"])
    assert [(e["method"], e["path"], e.get("route"), e["status"]) for e in events] == [
        ("POST", "/login", "/login", 200),
        ("GET", "/users/1", KINDS[kind][2], 200),
        ("GET", "/users/99", KINDS[kind][2], 404),
    ]
    profile = events[1]
    assert profile["client_ip"] == "10.0.0.2"  # one trusted hop: the proxy's view of the client
    assert profile["user_id"] == "1" and profile["credential_id"] == credential_hash(token)
    assert profile["trace_id"] == TRACE and profile["response_bytes"] > 0
    assert events[0]["request_bytes"] > 0 and "user_id" not in events[0]
    for e in events:
        RumEvent.model_validate(e)  # the contract the ingest stage applies
    assert publisher.stats().dropped == 0


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_with_kafka_down_requests_succeed_and_the_queue_sheds_load(kind: str) -> None:
    down = KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_s=2)
    publisher = RumPublisher(config(down, queue_size=5))
    try:
        with serve(kind, publisher) as base, httpx.Client(base_url=base, timeout=10) as client:
            statuses = [client.get("/users/1").status_code for _ in range(20)]
        assert statuses == [401] * 20
        stats = publisher.stats()
        assert (stats.queued, stats.dropped, stats.sent) == (5, 15, 0)
    finally:
        publisher.close(timeout_s=2)


@pytest.fixture
def recording() -> Iterator[Recording]:
    publisher = Recording(config(KafkaConfig(bootstrap_servers="unused:9092")))
    yield publisher


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_app_errors_are_captured_as_500_and_a_raising_hook_is_harmless(
    kind: str, recording: Recording
) -> None:
    make_app, server, _ = KINDS[kind]
    app = make_app(recording)
    if kind == "asgi":
        app.router.add_route("/boom/{n}", _boom)
    else:
        app.add_url_rule("/boom/<n>", "boom", _boom_sync)
    if kind == "asgi":
        app.user_middleware[0].kwargs["user_id"] = _raise  # the stack is built on first call
    else:
        app.wsgi_app.recorder.user_id = _raise
    with server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        # uvicorn closes the connection after an unhandled error: do not reuse it.
        assert client.get("/boom/7", headers={"connection": "close"}).status_code == 500
        assert client.post("/login", json={"password": "wrong"}).status_code == 401
    assert wait_until(lambda: len(recording.events) == 2)
    boom, login = recording.events
    assert (boom["status"], boom["route"], boom["path"]) == (500, "/boom/{n}", "/boom/7")
    assert (login["status"], "user_id" in login) == (401, False)
    assert len(calls) >= 2  # the raising hook ran for both requests, and cost them nothing


async def _boom(request: Any) -> Any:
    raise RuntimeError("boom")


def _boom_sync(n: str) -> Any:
    raise RuntimeError("boom")


def _raise(_: Any) -> str:
    calls.append(1)
    raise LookupError("hook bug")


calls: list[int] = []
