"""What RUM capture adds to a request, with Kafka up and with Kafka down. Prints numbers.

Two views:

- in process: the example app's ``GET /users/1`` called straight through the
  ASGI and WSGI interfaces, bare and wrapped, so the figure is the
  middleware's own cost in microseconds, without network noise;
- on loopback: the same app served by uvicorn and by werkzeug, requests in
  sequence with httpx, latency percentiles bare and wrapped.

"Kafka up" is the embedded broker; "Kafka down" is a closed port, where the
queue fills and then sheds. Run: ``python benchmarks/capture_overhead.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from werkzeug.serving import make_server

from apiwatch.capture import CaptureConfig, RumPublisher
from apiwatch.settings import KafkaConfig
from apiwatch.streams.broker import EmbeddedBroker, free_port

ROOT = Path(__file__).resolve().parents[1]
IN_PROCESS_N = 20_000
LOOPBACK_N = 2_000


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "capture_example", ROOT / "examples/capture_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Off(RumPublisher):
    """No capture at all: the baseline (the middleware is left out, not this class)."""


def asgi_once(app: Any) -> Callable[[], None]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/users/1",
        "raw_path": b"/users/1",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"x"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    loop = asyncio.new_event_loop()

    def call() -> None:
        loop.run_until_complete(app(dict(scope), receive, send))

    return call


def wsgi_once(app: Any) -> Callable[[], None]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/users/1",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def call() -> None:
        body = app(dict(environ), lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return call


def per_call_us(call: Callable[[], None], n: int) -> float:
    for _ in range(500):
        call()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            call()
        samples.append((time.perf_counter() - start) / (n // 5) * 1e6)
    return statistics.median(samples)


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def loopback_ms(base: str, n: int) -> tuple[float, float]:
    with httpx.Client(base_url=base) as client:
        for _ in range(100):
            client.get("/users/1")
        times = []
        for _ in range(n):
            start = time.perf_counter()
            client.get("/users/1")
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def main() -> None:
    # Per-request access logs and reconnect warnings would drown the figures.
    for name in ("werkzeug", "aiokafka", "apiwatch.capture"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    example = load_example()
    with EmbeddedBroker() as broker:
        setups = {
            "bare": None,
            "kafka up": KafkaConfig(bootstrap_servers=broker.bootstrap_servers),
            "kafka down": KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        }
        print(f"in process, median per request over {IN_PROCESS_N} requests (GET /users/1 -> 401)")
        for kind, make, once in (
            ("asgi", example.make_asgi_app, asgi_once),
            ("wsgi", example.make_wsgi_app, wsgi_once),
        ):
            results = {}
            for name, kafka in setups.items():
                publisher = RumPublisher(
                    CaptureConfig(service="bench", kafka=kafka or KafkaConfig(), queue_size=10_000)
                )
                app = make(publisher)
                if kafka is None:  # the same app without the middleware
                    app = app.wsgi_app.app if kind == "wsgi" else _without_middleware(app)
                results[name] = per_call_us(once(app), IN_PROCESS_N)
                stats = publisher.stats()
                publisher.close(timeout_s=2)
                extra = f"  (+{results[name] - results['bare']:.1f} µs)" if kafka else ""
                print(f"  {kind} {name:<10} {results[name]:7.1f} µs{extra}   {stats}")

        print(f"\nloopback HTTP, {LOOPBACK_N} sequential requests, p50 / p99 in ms")
        for kind, make, serve in (
            ("asgi/uvicorn", example.make_asgi_app, serve_asgi),
            ("wsgi/werkzeug", example.make_wsgi_app, serve_wsgi),
        ):
            for name, kafka in setups.items():
                publisher = RumPublisher(
                    CaptureConfig(service="bench", kafka=kafka or KafkaConfig())
                )
                app = make(publisher)
                if kafka is None:
                    app = app.wsgi_app.app if kind.startswith("wsgi") else _without_middleware(app)
                with serve(app) as base:
                    p50, p99 = loopback_ms(base, LOOPBACK_N)
                publisher.close(timeout_s=2)
                print(f"  {kind:<14} {name:<10} p50 {p50:6.3f}  p99 {p99:6.3f}")


def _without_middleware(app: Any) -> Any:
    app.user_middleware.clear()
    return app


if __name__ == "__main__":
    main()
