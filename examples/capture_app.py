"""Example: one small API served as ASGI (Starlette) and as WSGI (Flask), with RUM capture.

Every request becomes a RUM event on apiwatch's RUM topic, keyed by service,
with the route template, the user id the app knows and a hash of the bearer
token, never the token itself. Needs the ``capture`` extra
(``pip install 'apiwatch[capture]'``).

Run a broker and the app, then call it or point the example checks at it::

    apiwatch broker --port 9092 &
    APIWATCH_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/capture_app.py asgi --port 8000
    APIWATCH_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/capture_app.py wsgi --port 8001
    EXAMPLE_PASSWORD=demo apiwatch checks once examples/checks --no-publish
    apiwatch tail  # or any Kafka consumer of apiwatch.rum.events
"""

from __future__ import annotations

import argparse
import os
import secrets
from typing import Any

from apiwatch.capture import (
    CaptureConfig,
    RumMiddleware,
    RumPublisher,
    credential_hash,
    install_flask,
)
from apiwatch.settings import load_settings

USERS = {1: "Alice", 2: "Bob"}
PASSWORD = os.environ.get("EXAMPLE_PASSWORD", "demo")
_TOKENS: dict[str, int] = {}


def login(body: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("password") != PASSWORD:
        return 401, {"error": "bad credentials"}
    token = "t-" + secrets.token_hex(12)
    _TOKENS[token] = 1
    return 200, {"token": token, "user_id": 1}


def profile(user_id: int, authorization: str | None) -> tuple[int, dict[str, Any], int | None]:
    caller = _TOKENS.get((authorization or "").removeprefix("Bearer "))
    if caller is None:
        return 401, {"error": "log in first"}, None
    if user_id not in USERS:
        return 404, {"error": "no such user"}, caller
    return 200, {"id": user_id, "name": USERS[user_id]}, caller


def make_asgi_app(publisher: RumPublisher) -> Any:
    """The Starlette app; the middleware reads the route from Starlette's router."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def do_login(request: Request) -> JSONResponse:
        status, body = login(await request.json())
        return JSONResponse(body, status_code=status)

    async def user(request: Request) -> JSONResponse:
        status, body, caller = profile(
            request.path_params["user_id"], request.headers.get("authorization")
        )
        request.state.user_id = caller  # read by the user_id hook after the response
        return JSONResponse(body, status_code=status)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/login", do_login, methods=["POST"]),
            Route("/users/{user_id:int}", user),
        ]
    )
    app.add_middleware(
        RumMiddleware,
        publisher=publisher,
        user_id=lambda scope: scope.get("state", {}).get("user_id"),
        credential_id=lambda scope: credential_hash(_header(scope, b"authorization")),
    )
    return app


def make_wsgi_app(publisher: RumPublisher) -> Any:
    """The Flask app; ``install_flask`` records Flask's ``url_rule`` as the route."""
    from flask import Flask, jsonify, request

    app = Flask("capture_example")

    @app.get("/health")
    def health() -> Any:
        return jsonify(ok=True)

    @app.post("/login")
    def do_login() -> Any:
        status, body = login(request.get_json(silent=True))
        return jsonify(body), status

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> Any:
        status, body, caller = profile(user_id, request.headers.get("authorization"))
        request.environ["example.user_id"] = caller  # read by the user_id hook
        return jsonify(body), status

    install_flask(
        app,
        publisher,
        user_id=lambda environ: environ.get("example.user_id"),
        credential_id=lambda environ: credential_hash(environ.get("HTTP_AUTHORIZATION")),
    )
    return app


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["asgi", "wsgi"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--client-ip-header", help="Trusted proxy header, e.g. x-forwarded-for (behind a proxy)."
    )
    args = parser.parse_args()
    settings = load_settings()
    config = CaptureConfig.from_settings(
        settings,
        service="example-api",
        client_ip_header=args.client_ip_header,
        exclude_paths=frozenset({"/health"}),
    )
    if settings.embedded:
        print("APIWATCH_KAFKA__BOOTSTRAP_SERVERS is not set: events are counted and dropped")
    publisher = RumPublisher(config)
    if args.kind == "asgi":
        import uvicorn

        uvicorn.run(make_asgi_app(publisher), host=args.host, port=args.port)
    else:
        make_wsgi_app(publisher).run(host=args.host, port=args.port)
    publisher.close()
    print(f"RUM capture: {publisher.stats()}")


if __name__ == "__main__":
    main()
