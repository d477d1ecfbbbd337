"""What the ASGI and WSGI middlewares share: hooks, and a finished request turned into an event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from apiwatch.capture.publisher import RumPublisher
from apiwatch.capture.request import as_int, build_event, client_address, trace_id_of

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class RequestFacts:
    """The few request facts a middleware reads from its framework-neutral request object."""

    method: str
    path: str
    route: str | None
    peer: str | None
    proxy_header: str | None
    user_agent: str | None
    content_length: str | None
    traceparent: str | None


class Recorder(Generic[R]):
    """Builds and queues the RUM event of one request; ``R`` is the scope or the environ."""

    def __init__(
        self,
        publisher: RumPublisher,
        user_id: Callable[[R], str | None] | None,
        credential_id: Callable[[R], str | None] | None,
    ) -> None:
        self.publisher = publisher
        self.config = publisher.config
        self.user_id = user_id
        self.credential_id = credential_id

    def record(
        self,
        request: R,
        facts: Callable[[R], RequestFacts],
        started: float,
        duration_s: float,
        status: int,
        sent: int,
    ) -> None:
        if self.publisher.shed_if_full():
            return  # Kafka is behind: do not spend the request's time describing it
        try:
            f = facts(request)
            event = build_event(
                service=self.config.service,
                environment=self.config.environment,
                started=started,
                duration_s=duration_s,
                method=f.method,
                path=f.path,
                route=f.route,
                status=status,
                client_ip=client_address(f.proxy_header, f.peer, self.config.trusted_hops),
                user_agent=f.user_agent,
                request_bytes=as_int(f.content_length),
                response_bytes=sent,
                trace_id=trace_id_of(f.traceparent),
                user_id=self._hook(self.user_id, request),
                credential_id=self._hook(self.credential_id, request),
            )
        except Exception:
            # Monitoring must never turn a served request into an error.
            log.exception("RUM capture could not describe a request; skipped")
            return
        self.publisher.submit(event)

    @staticmethod
    def _hook(hook: Callable[[R], str | None] | None, request: R) -> str | None:
        if hook is None:
            return None
        try:
            value = hook(request)
        except Exception:
            log.warning("a RUM capture hook raised; the field is left empty", exc_info=True)
            return None
        return str(value)[:256] if value not in (None, "") else None
