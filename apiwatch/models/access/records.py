"""What the ingest extension sends to the access-detect stage: compact per-window records.

Per source partition and event-time micro-window, each client (IP, user id,
credential id — each where present) gets one :class:`ClientWindow`: counts,
statuses, capped sets of distinct values, per-route slices with the
population reference of that route in the same window, sample event ids,
first and last seen. Each login route gets one :class:`LoginWindow` (the
route-level view distributed credential stuffing needs). Records travel packed
in :class:`ClientBatch` messages (one per access-topic partition per flush,
keyed so they land on the partition of every client inside), so the Faust
stage pays its per-message cost once per hundreds of clients, never per event.

A client key is ``environment|kind|value``:

>>> client_key("production", ClientKind.IP, "10.0.0.1")
'production|ip|10.0.0.1'
>>> split_client_key("production|user|alice@example.com")
('production', <ClientKind.USER: 'user'>, 'alice@example.com')
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

KEY_SEP = "|"


class ClientKind(StrEnum):
    IP = "ip"
    USER = "user"
    CREDENTIAL = "credential"


def client_key(environment: str, kind: ClientKind, value: str) -> str:
    return KEY_SEP.join((environment, kind.value, value))


def split_client_key(key: str) -> tuple[str, ClientKind, str]:
    env, kind, value = key.split(KEY_SEP, 2)
    return env, ClientKind(kind), value


def route_key(service: str, method: str, route: str) -> str:
    """>>> route_key("shop", "GET", "/items/{id}")
    'shop GET /items/{id}'
    """
    return f"{service} {method} {route}"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSlice(_Record):
    """One client's requests to one route in one micro-window."""

    count: int
    denied: int = Field(0, description="403 and 404 answers.")
    ids: list[str] = Field(default_factory=list, description="Distinct object ids (capped).")
    paths: int = Field(0, description="Distinct concrete paths (exact up to the cap).")
    ref: float = Field(0.0, description="Population quantile of per-client requests here.")
    population: int = Field(0, description="Clients of the same kind on this route.")


class ClientWindow(_Record):
    """One client's activity in one event-time micro-window of one source partition."""

    client: str
    start_ms: int
    end_ms: int
    first_ms: int
    last_ms: int
    count: int
    errors_4xx: int = 0
    errors_5xx: int = 0
    not_found: int = 0
    writes: int = 0
    login_attempts: int = 0
    login_failures: int = 0
    response_bytes: int = 0
    routes: dict[str, RouteSlice] = Field(default_factory=dict)
    route_count: int = 0
    routes_ref: float = Field(0.0, description="Population quantile of distinct routes.")
    users: list[str] = Field(default_factory=list)
    failed_users: list[str] = Field(default_factory=list)
    ips: list[str] = Field(default_factory=list)
    failed_ips: list[str] = Field(default_factory=list)
    countries: dict[str, tuple[int, int, int]] = Field(
        default_factory=dict, description="country -> (first_ms, last_ms, count)"
    )
    agents: list[str] = Field(default_factory=list)
    paths_404: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    scanner_agents: list[str] = Field(default_factory=list)
    scanner_requests: int = 0
    services: dict[str, int] = Field(default_factory=dict)
    samples: list[str] = Field(default_factory=list)


class LoginWindow(_Record):
    """All login attempts on one login route in one micro-window of one source partition."""

    route: str = Field(description="environment|service|METHOD|route")
    start_ms: int
    end_ms: int
    attempts: int
    failures: int
    failed_users: list[str] = Field(default_factory=list)
    ok_users: list[str] = Field(default_factory=list, description="Users who logged in.")
    failed_ips: dict[str, int] = Field(default_factory=dict)
    samples: list[str] = Field(default_factory=list)


class ClientBatch(_Record):
    type: Literal["clients"] = "clients"
    records: list[ClientWindow]


class LoginBatch(_Record):
    type: Literal["login"] = "login"
    records: list[LoginWindow]


AccessMessage = Annotated[ClientBatch | LoginBatch, Field(discriminator="type")]

#: Parses one message of the access topic (bytes or str) into a batch.
ACCESS_MESSAGE: TypeAdapter[ClientBatch | LoginBatch] = TypeAdapter(AccessMessage)
