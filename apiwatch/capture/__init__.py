"""RUM capture for Python APIs: ASGI and WSGI middlewares feeding a background Kafka publisher.

See :mod:`apiwatch.capture.asgi` (Starlette, FastAPI) and
:mod:`apiwatch.capture.wsgi` (Flask, Django); both need only a
:class:`CaptureConfig` and a :class:`RumPublisher`, and no framework import.
"""

from apiwatch.capture.asgi import RumMiddleware
from apiwatch.capture.config import CaptureConfig
from apiwatch.capture.publisher import CaptureStats, RumPublisher
from apiwatch.capture.request import credential_hash
from apiwatch.capture.wsgi import DjangoRouteMiddleware, RumWsgiMiddleware, install_flask

__all__ = [
    "CaptureConfig",
    "CaptureStats",
    "DjangoRouteMiddleware",
    "RumMiddleware",
    "RumPublisher",
    "RumWsgiMiddleware",
    "credential_hash",
    "install_flask",
]
