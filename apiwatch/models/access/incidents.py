"""One alert per client (or route) and incident: firing once, resolved once, then a cooldown.

An incident of one kind starts at the first finding and stays open while
findings keep coming; it resolves after ``resolve_after_s`` of event time
without one, and the same kind then stays quiet for ``cooldown_s``. Findings
in between add nothing: never one alert per request or per window.

>>> from apiwatch.models.access.config import IncidentConfig
>>> book = IncidentBook(IncidentConfig(resolve_after_s=60, cooldown_s=300))
>>> [book.step("probing", hit, t * 1000) for hit, t in
...     [(True, 0), (True, 10), (False, 30), (False, 80), (True, 100), (True, 500)]]
['firing', None, None, 'resolved', None, 'firing']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from apiwatch.models.access.config import IncidentConfig

Step = Literal["firing", "resolved"]


@dataclass(slots=True)
class Incident:
    firing: bool = False
    started_ms: int | None = None
    last_hit_ms: int | None = None
    resolved_ms: int | None = None
    hits: int = 0


class IncidentBook:
    """Incident state per detector kind for one client or route; JSON-able."""

    def __init__(self, cfg: IncidentConfig, cooldowns: dict[str, float] | None = None) -> None:
        self.resolve_after_ms = int(cfg.resolve_after_s * 1000)
        self.cooldown_ms = int(cfg.cooldown_s * 1000)
        self.cooldowns_ms = {k: int(v * 1000) for k, v in (cooldowns or {}).items()}
        self.incidents: dict[str, Incident] = {}

    def step(self, kind: str, hit: bool, t_ms: int) -> Step | None:
        """Advance ``kind`` with a finding (``hit``) or its absence at event time ``t_ms``."""
        inc = self.incidents.get(kind)
        if inc is None:
            if not hit:
                return None
            inc = self.incidents[kind] = Incident()
        if hit:
            if inc.firing:
                inc.hits += 1
                inc.last_hit_ms = max(inc.last_hit_ms or t_ms, t_ms)
                return None
            cooldown = self.cooldowns_ms.get(kind, self.cooldown_ms)
            if inc.resolved_ms is not None and t_ms - inc.resolved_ms < cooldown:
                return None
            inc.firing, inc.started_ms, inc.last_hit_ms, inc.hits = True, t_ms, t_ms, 1
            return "firing"
        return self._maybe_resolve(inc, t_ms)

    def _maybe_resolve(self, inc: Incident, t_ms: int) -> Step | None:
        quiet = inc.last_hit_ms is not None and t_ms - inc.last_hit_ms >= self.resolve_after_ms
        if inc.firing and quiet:
            inc.firing = False
            inc.resolved_ms = t_ms
            return "resolved"
        return None

    def expire(self, t_ms: int) -> list[str]:
        """Resolve every open incident quiet for long enough; return their kinds."""
        return [k for k, inc in self.incidents.items() if self._maybe_resolve(inc, t_ms)]

    def started_ms(self, kind: str) -> int | None:
        inc = self.incidents.get(kind)
        return inc.started_ms if inc is not None else None

    @property
    def open(self) -> list[str]:
        return [k for k, inc in self.incidents.items() if inc.firing]

    def forget_quiet(self, t_ms: int) -> None:
        """Drop closed incidents whose cooldown is over: state stays bounded."""
        longest = max([self.cooldown_ms, *self.cooldowns_ms.values()])
        self.incidents = {
            k: inc
            for k, inc in self.incidents.items()
            if inc.firing or inc.resolved_ms is None or t_ms - inc.resolved_ms < longest
        }

    def to_state(self) -> dict[str, Any]:
        return {k: asdict(inc) for k, inc in self.incidents.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.incidents = {k: Incident(**v) for k, v in state.items()}
