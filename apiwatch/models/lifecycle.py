"""Alert lifecycle: from a stream of verdicts to firing, updated and resolved.

One :class:`AlertLifecycle` per (kind, series). It fires after ``fire_m`` of
the last ``fire_n`` judged buckets were anomalous, resolves after
``resolve_after`` normal buckets in a row, refuses to fire again within
``cooldown_s`` of resolving (flapping), and sends ``updated`` at most once per
``update_interval_s`` while firing, when the observation got worse. Buckets
that could not be judged count for nothing, except that a firing alert with
no judgeable data for ``3 * resolve_after`` buckets resolves as stale rather
than staying open forever. Time is event time, passed in, so a backtest
replays exactly what the stream did.

>>> lc = AlertLifecycle(LifecycleConfig(fire_m=2, fire_n=3, resolve_after=2, cooldown_s=0))
>>> [lc.step(v, t) for t, v in enumerate([True, False, True, True, False, False], 1)]
[None, None, 'firing', None, None, 'resolved']
"""

from __future__ import annotations

from collections import deque
from typing import Any

from apiwatch.models.alerts import Transition
from apiwatch.models.detection_config import LifecycleConfig


class AlertLifecycle:
    """Hysteresis, cooldown and update pacing for one (kind, series)."""

    def __init__(self, cfg: LifecycleConfig) -> None:
        self.cfg = cfg
        self.recent: deque[bool] = deque(maxlen=cfg.fire_n)
        self.firing = False
        self.started_ms: int | None = None
        self.resolved_ms: int | None = None
        self.last_update_ms: int | None = None
        self.normal_streak = 0
        self.unknown_streak = 0
        self.peak_score = 0.0

    def step(self, anomalous: bool | None, t_ms: int, score: float = 0.0) -> Transition | None:
        """Advance with one verdict at event time ``t_ms``; return a transition or None."""
        if anomalous is None:
            self.unknown_streak += 1
            if self.firing and self.unknown_streak >= 3 * self.cfg.resolve_after:
                return self._resolve(t_ms)
            return None
        self.unknown_streak = 0
        self.recent.append(anomalous)
        if not self.firing:
            if sum(self.recent) >= self.cfg.fire_m and not self._cooling(t_ms):
                self.firing = True
                self.started_ms = t_ms
                self.last_update_ms = t_ms
                self.normal_streak = 0
                self.peak_score = score
                return "firing"
            return None
        if anomalous:
            self.normal_streak = 0
            interval_ms = self.cfg.update_interval_s * 1000
            if (
                interval_ms > 0
                and score > self.peak_score
                and self.last_update_ms is not None
                and t_ms - self.last_update_ms >= interval_ms
            ):
                self.peak_score = score
                self.last_update_ms = t_ms
                return "updated"
            return None
        self.normal_streak += 1
        if self.normal_streak >= self.cfg.resolve_after:
            return self._resolve(t_ms)
        return None

    def _cooling(self, t_ms: int) -> bool:
        return self.resolved_ms is not None and t_ms - self.resolved_ms < self.cfg.cooldown_s * 1000

    def _resolve(self, t_ms: int) -> Transition:
        self.firing = False
        self.resolved_ms = t_ms
        self.normal_streak = 0
        self.unknown_streak = 0
        self.recent.clear()
        return "resolved"

    def to_state(self) -> dict[str, Any]:
        return {
            "recent": list(self.recent),
            "firing": self.firing,
            "started_ms": self.started_ms,
            "resolved_ms": self.resolved_ms,
            "last_update_ms": self.last_update_ms,
            "normal_streak": self.normal_streak,
            "unknown_streak": self.unknown_streak,
            "peak_score": self.peak_score,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent = deque((bool(x) for x in state.get("recent", [])), maxlen=self.cfg.fire_n)
        self.firing = bool(state.get("firing", False))
        self.started_ms = state.get("started_ms")
        self.resolved_ms = state.get("resolved_ms")
        self.last_update_ms = state.get("last_update_ms")
        self.normal_streak = int(state.get("normal_streak", 0))
        self.unknown_streak = int(state.get("unknown_streak", 0))
        self.peak_score = float(state.get("peak_score", 0.0))
