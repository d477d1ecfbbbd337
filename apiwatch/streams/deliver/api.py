"""A small HTTP API for silences, served by every delivery worker.

- ``GET /api/v1/silences`` — every silence with its state (pending, active, expired);
- ``GET /api/v1/silences/{id}`` — one silence;
- ``POST /api/v1/silences`` — create one: ``matchers``, ``created_by``, ``comment`` and
  ``ends_at`` or ``duration_s`` (optionally ``starts_at``); answers ``201 {"id": …}``;
- ``DELETE /api/v1/silences/{id}`` — expire it now;
- ``GET /healthz``.

Writes go to the silences topic, so every worker applies them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from apiwatch.models.delivery.silence import Silence, SilenceRequest
from apiwatch.settings import describe_validation_error
from apiwatch.streams.deliver.silences import SilenceStore

_STORE: web.AppKey[SilenceStore] = web.AppKey("silences", SilenceStore)


def silence_json(silence: Silence, now: datetime) -> dict[str, Any]:
    return {**silence.model_dump(mode="json"), "state": silence.state(now)}


def _now() -> datetime:
    return datetime.now(tz=UTC)


async def _list(request: web.Request) -> web.Response:
    now = _now()
    return web.json_response([silence_json(s, now) for s in request.app[_STORE].silences.all()])


def _find(request: web.Request) -> Silence:
    found = request.app[_STORE].silences.get(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text='{"error": "no such silence"}', content_type="application/json")
    return found


async def _get(request: web.Request) -> web.Response:
    return web.json_response(silence_json(_find(request), _now()))


async def _create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        silence = SilenceRequest.model_validate(body).to_silence(_now())
    except ValidationError as exc:
        return web.json_response({"error": describe_validation_error(exc)}, status=400)
    except ValueError as exc:  # not JSON at all
        return web.json_response({"error": f"body is not JSON: {exc}"}, status=400)
    await request.app[_STORE].put(silence)
    return web.json_response({"id": silence.id}, status=201)


async def _expire(request: web.Request) -> web.Response:
    now = _now()
    expired = _find(request).expire(now)
    await request.app[_STORE].put(expired)
    return web.json_response(silence_json(expired, now))


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(store: SilenceStore) -> web.Application:
    app = web.Application()
    app[_STORE] = store
    app.router.add_get("/api/v1/silences", _list)
    app.router.add_post("/api/v1/silences", _create)
    app.router.add_get("/api/v1/silences/{id}", _get)
    app.router.add_delete("/api/v1/silences/{id}", _expire)
    app.router.add_get("/healthz", _health)
    return app


async def start_api(store: SilenceStore, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve the API; return the runner (to clean up) and the base URL actually bound."""
    runner = web.AppRunner(make_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{bound[0]}:{bound[1]}"
