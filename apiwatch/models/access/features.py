"""Per-client window features for the anomalous-client model.

One row per client and judgement, over the model's window: the *mix* of what
the client does (route breadth, error and refusal shares, login failures,
writes, user-agent changes, payload size, time of day), not its volume or
how steadily it calls. Volume is relative to the population by construction and is the
scraping detector's business; a model fed with it flags every carrier NAT,
partner and batch job, which are heavy and perfectly ordinary. Counts are
``log1p``-scaled; shares stay in [0, 1].

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> from apiwatch.models.access.state import ClientState
>>> cfg = AccessConfig()
>>> s = ClientState("production|ip|192.0.2.1", cfg)
>>> s.merge(ClientWindow(client=s.client, start_ms=0, end_ms=10_000, first_ms=0,
...     last_ms=9_000, count=40, errors_4xx=10, not_found=8))
>>> row = client_features(s, 10_000, cfg.model.window_s, cfg.fold.window_s)
>>> dict(zip(FEATURES, row))["not_found_share"]
0.2
>>> shown("distinct_routes", math.log1p(9.0)), shown("not_found_share", 0.5)
(9.0, 0.5)
"""

from __future__ import annotations

import math

from apiwatch.models.access.state import ClientState, Col, RCol

FEATURES: tuple[str, ...] = (
    "distinct_routes",
    "server_error_share",
    "client_error_share",
    "not_found_share",
    "denied_share",
    "login_failure_share",
    "user_agents",
    "write_share",
    "kb_per_request",
    "hour_sin",
    "hour_cos",
)
#: Context for the forest, never a reason to alert: a rolling sample spans a few hours.
CONTEXT = frozenset({"hour_sin", "hour_cos"})
#: Features shown to people as counts (the model sees them log1p-scaled).
LOG_SCALED = frozenset({"distinct_routes", "user_agents", "kb_per_request"})


def client_features(
    state: ClientState, now_ms: int, window_s: float, micro_window_s: float
) -> list[float]:
    """The feature row of ``state`` over the trailing ``window_s``."""
    start = now_ms - int(window_s * 1000)
    t = state.totals(start)
    n = max(1, t[Col.COUNT])
    denied = sum(s.sum_since(start)[RCol.DENIED] for s in state.routes.values())
    hour = (now_ms / 3_600_000) % 24
    return [
        math.log1p(len(state.routes)),
        t[Col.E5XX] / n,
        t[Col.E4XX] / n,
        t[Col.NOT_FOUND] / n,
        denied / n,
        t[Col.LOGIN_FAIL] / n,
        math.log1p(state.agents.count_since(start)),
        t[Col.WRITES] / n,
        math.log1p(t[Col.KBYTES] / n),
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
    ]


def shown(name: str, value: float) -> float:
    """A feature value as people read it (undo the log scaling)."""
    return round(math.expm1(value), 3) if name in LOG_SCALED else round(value, 3)
