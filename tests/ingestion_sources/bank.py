"""A small HTTP API on loopback for the check runner's tests, that can be made slow, failing or wrong.

Endpoints: ``POST /login`` (JSON user/password → token, and a ``sid`` cookie
header), ``GET /accounts/{id}/balance`` (needs ``Authorization: Bearer``),
``POST /transfer``, ``GET /whoami?key=…`` (echoes the key in a header).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PASSWORD = "correct horse battery staple"
TOKEN = "tok-5f1e2d"


@dataclass
class Behaviour:
    """How the bank misbehaves: ``mode`` ok | slow | fail | wrong; ``fail_next`` 500s first."""

    mode: str = "ok"
    delay_s: float = 1.0
    fail_next: int = 0
    requests: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _misbehave(self) -> bool:
        b = self.server.behaviour
        b.requests += 1
        if b.fail_next > 0:
            b.fail_next -= 1
            self._reply(500, {"error": "injected failure"})
            return True
        if b.mode == "slow":
            time.sleep(b.delay_s)
        if b.mode == "fail":
            self._reply(503, {"error": "unavailable"})
            return True
        return False

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self._misbehave():
            return
        if self.path == "/login":
            if body.get("password") != PASSWORD:
                self._reply(401, {"error": "bad credentials"})
                return
            self._reply(200, {"token": TOKEN, "account": 42}, {"set-cookie": "sid=s-991; Path=/"})
        elif self.path == "/transfer":
            ok = self.headers.get("authorization") == f"Bearer {TOKEN}"
            self._reply(201 if ok else 403, {"id": "tr-1", "amount": body.get("amount")})
        else:
            self._reply(404, {"error": "not found"})

    def do_GET(self) -> None:
        if self._misbehave():
            return
        wrong = self.server.behaviour.mode == "wrong"
        if self.path.startswith("/accounts/") and self.path.endswith("/balance"):
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"error": "no token"})
                return
            body = {"balance": -5, "currency": 7} if wrong else {"balance": 120, "currency": "EUR"}
            self._reply(200, body, {"x-api-version": "1" if wrong else "2"})
        elif self.path.startswith("/whoami"):
            key = self.path.partition("key=")[2]
            self._reply(200, {"user": "alice"}, {"x-echo-key": key})
        else:
            self._reply(404, {"error": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


@dataclass
class Bank:
    url: str
    behaviour: Behaviour


@contextmanager
def serve_bank() -> Iterator[Bank]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.behaviour = Behaviour()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Bank(url=f"http://{host!s}:{port}", behaviour=server.behaviour)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
