"""Robust rolling baselines: what a bucket statistic normally looks like.

:class:`RobustBaseline` keeps the last ``window`` accepted values of one
statistic (a p95, an error rate, a request count) and answers with their
median and bounds from the median absolute deviation (MAD), which a few wild
values cannot drag the way a mean and standard deviation are dragged. It
learns only what its owner feeds it: detectors feed it buckets judged normal,
so an incident never becomes the new normal. What they judged anomalous goes
to :meth:`RobustBaseline.hold` instead: a long incident leaves the baseline
where it was, but once held values have dominated for ``relearn_after``
observations the baseline adopts them, because a level that persists that long
is a permanent shift (a new release, a new customer), not an incident.

:class:`SeasonalBaseline` adds daily and weekly profiles on top: once a slot
(an hour of the day, or an hour of the week) has been seen on enough days or
weeks, its robust median is blended with the rolling median, so a morning
ramp is expected rather than alarming.

>>> b = RobustBaseline(window=50, warmup=5, mad_k=6.0, min_ratio=1.5)
>>> for x in [100, 104, 98, 101, 99, 102, 97]:
...     b.update(x)
>>> e = b.expected()
>>> round(e.value), e.upper > 120, b.ready
(100, True, True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from apiwatch.models.alerts import Expected

#: 1.4826 x MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826


H = TypeVar("H")


class ShiftGuard(Generic[H]):
    """Holds what was judged anomalous and says when it has become the new normal.

    Each held item adds one point, each normal one takes four away, so a level
    is adopted after ``relearn_after`` points: when at least ~80 % of the
    observations since the shift began stayed anomalous, for long enough.

    >>> g = ShiftGuard[float](relearn_after=3, keep=10)
    >>> g.hold(5.0), g.hold(5.0), g.hold(5.0)
    (None, None, [5.0, 5.0, 5.0])
    """

    __slots__ = ("held", "relearn_after", "score")

    def __init__(self, relearn_after: int, keep: int) -> None:
        self.relearn_after = relearn_after
        self.held: deque[H] = deque(maxlen=max(1, min(keep, relearn_after)))
        self.score = 0

    def normal(self) -> None:
        self.score = max(0, self.score - 4)
        if self.score == 0:
            self.held.clear()

    def hold(self, item: H) -> list[H] | None:
        """Remember ``item``; return the held items to adopt once the shift persisted."""
        if self.relearn_after <= 0:
            return None
        self.held.append(item)
        self.score += 1
        if self.score < self.relearn_after:
            return None
        adopted = list(self.held)
        self.held.clear()
        self.score = 0
        return adopted

    def to_state(self) -> dict[str, Any]:
        return {"held": list(self.held), "score": self.score}

    def load_state(self, state: dict[str, Any], cast: Callable[[Any], H]) -> None:
        self.held = deque((cast(x) for x in state.get("held", [])), maxlen=self.held.maxlen)
        self.score = int(state.get("score", 0))


class RobustBaseline:
    """Median and MAD bounds over a rolling window of accepted values.

    Parameters
    ----------
    window
        Number of recent accepted values kept.
    warmup
        Values needed before :meth:`expected` answers.
    mad_k
        Width of the band in robust standard deviations.
    min_ratio
        The upper bound is at least ``min_ratio`` times the median, so a very
        steady series does not alert on trivial wiggles.
    min_sigma_ratio
        Floor of the robust deviation as a fraction of the median (MAD is 0
        when over half the values are equal).
    relearn_after
        Held (anomalous) observations, net of normal ones in between, after
        which the baseline adopts the held level; 0 never adopts.
    """

    __slots__ = ("guard", "mad_k", "min_ratio", "min_sigma_ratio", "values", "warmup", "window")

    def __init__(
        self,
        window: int = 360,
        warmup: int = 30,
        mad_k: float = 6.0,
        min_ratio: float = 1.5,
        min_sigma_ratio: float = 0.05,
        relearn_after: int = 0,
    ) -> None:
        if warmup > window:
            raise ValueError(f"warmup ({warmup}) cannot exceed window ({window})")
        self.window = window
        self.warmup = warmup
        self.mad_k = mad_k
        self.min_ratio = min_ratio
        self.min_sigma_ratio = min_sigma_ratio
        self.values: deque[float] = deque(maxlen=window)
        self.guard = ShiftGuard[float](relearn_after, keep=window)

    def update(self, x: float) -> None:
        """Learn a value judged normal."""
        self.values.append(float(x))
        self.guard.normal()

    def hold(self, x: float) -> bool:
        """Remember a value judged anomalous without learning it (yet); True once adopted."""
        adopted = self.guard.hold(float(x))
        if adopted is None:
            return False
        # The old level is history: start over from the new one.
        self.values.clear()
        self.values.extend(adopted)
        return True

    @property
    def holding(self) -> bool:
        """Whether anomalous values are held, waiting to be adopted or forgotten."""
        return bool(self.guard.held)

    @property
    def ready(self) -> bool:
        return len(self.values) >= self.warmup

    def expected(self) -> Expected | None:
        """Median with lower and upper bounds, or ``None`` while warming up."""
        if not self.ready:
            return None
        arr = np.fromiter(self.values, dtype=float, count=len(self.values))
        med = float(np.median(arr))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(arr - med)))
        sigma = max(sigma, self.min_sigma_ratio * abs(med))
        upper = max(med + self.mad_k * sigma, med * self.min_ratio)
        lower = max(0.0, med - self.mad_k * sigma)
        return Expected(value=med, lower=lower, upper=upper)

    def to_state(self) -> dict[str, Any]:
        return {"values": list(self.values), "guard": self.guard.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.values = deque((float(v) for v in state.get("values", [])), maxlen=self.window)
        self.guard.load_state(state.get("guard", {}), float)


class SeasonalProfile:
    """Robust medians per slot of a period (hours of a day, hours of a week).

    Each visit of a slot (one calendar hour, say) is summarised by the median of
    the values learned during it; a slot keeps its last ``depth`` visit medians,
    so the state is ``slots x depth`` numbers whatever the traffic.

    >>> p = SeasonalProfile(period_s=86400, slots=24, depth=3)
    >>> for day in range(2):
    ...     for h in range(24):
    ...         for k in range(6):
    ...             p.add(float(h), (day * 86400 + h * 3600 + k * 600) * 1000)
    >>> p.add(0.0, 2 * 86400 * 1000)  # closes the last visit
    >>> p.level(5 * 3600 * 1000 + 86400 * 1000 * 3, min_depth=2)
    5.0
    """

    __slots__ = (
        "current",
        "current_slot",
        "current_values",
        "depth",
        "profile",
        "slot_ms",
        "slots",
    )

    #: Values kept per visit; a longer visit is subsampled (the median barely moves).
    MAX_VISIT_VALUES = 240

    def __init__(self, period_s: float, slots: int, depth: int) -> None:
        self.slots = slots
        self.depth = depth
        self.slot_ms = int(period_s * 1000) // slots
        self.profile: list[list[float]] = [[] for _ in range(slots)]
        self.current: int | None = None  # visit number (absolute slot index) being filled
        self.current_slot = 0
        self.current_values: list[float] = []

    def add(self, x: float, t_ms: int) -> None:
        visit = t_ms // self.slot_ms
        if visit != self.current:
            self._close_visit()
            self.current = visit
            self.current_slot = int(visit % self.slots)
        if len(self.current_values) >= self.MAX_VISIT_VALUES:
            del self.current_values[::2]
        self.current_values.append(float(x))

    def _close_visit(self) -> None:
        if self.current_values:
            ring = self.profile[self.current_slot]
            ring.append(float(np.median(self.current_values)))
            del ring[: -self.depth]
        self.current_values = []

    def level(self, t_ms: int, min_depth: int) -> float | None:
        """The slot's median over past visits, once ``min_depth`` visits are known."""
        ring = self.profile[int((t_ms // self.slot_ms) % self.slots)]
        if len(ring) < min_depth:
            return None
        return float(np.median(ring))

    def to_state(self) -> dict[str, Any]:
        return {
            "p": [list(r) for r in self.profile],
            "c": self.current,
            "v": list(self.current_values),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        saved = state.get("p", [])
        if len(saved) == self.slots:
            self.profile = [[float(x) for x in r][-self.depth :] for r in saved]
        self.current = state.get("c")
        if self.current is not None:
            self.current_slot = int(self.current % self.slots)
        self.current_values = [float(x) for x in state.get("v", [])]


class SeasonalBaseline:
    """A rolling robust baseline, shifted towards daily and weekly profiles once known.

    The expected value blends the rolling median with the profile level of the
    current slot (weekly when two weeks are known, else daily when two days
    are), weighted ``seasonal_weight``; the band keeps the rolling baseline's
    relative width around the blended centre. Only values judged normal reach
    the profiles, like the rolling window.

    >>> b = SeasonalBaseline(RobustBaseline(window=20, warmup=5))
    >>> for i in range(10):
    ...     b.update(100.0, i * 10_000)
    >>> b.expected(100_000).value
    100.0
    """

    __slots__ = ("daily", "min_days", "min_weeks", "rolling", "seasonal_weight", "weekly")

    def __init__(
        self,
        rolling: RobustBaseline,
        seasonal_weight: float = 0.5,
        daily_depth: int = 7,
        weekly_depth: int = 3,
        min_days: int = 2,
        min_weeks: int = 2,
    ) -> None:
        self.rolling = rolling
        self.seasonal_weight = seasonal_weight
        self.min_days = min_days
        self.min_weeks = min_weeks
        self.daily = SeasonalProfile(86400, 24, daily_depth)
        self.weekly = SeasonalProfile(7 * 86400, 168, weekly_depth)

    @property
    def ready(self) -> bool:
        return self.rolling.ready

    def update(self, x: float, t_ms: int) -> None:
        self.rolling.update(x)
        self.daily.add(x, t_ms)
        self.weekly.add(x, t_ms)

    def hold(self, x: float) -> bool:
        return self.rolling.hold(x)

    @property
    def holding(self) -> bool:
        return self.rolling.holding

    def seasonal_level(self, t_ms: int) -> float | None:
        level = self.weekly.level(t_ms, self.min_weeks)
        return level if level is not None else self.daily.level(t_ms, self.min_days)

    def expected(self, t_ms: int) -> Expected | None:
        base = self.rolling.expected()
        if base is None:
            return None
        level = self.seasonal_level(t_ms)
        if level is None:
            return base
        w = self.seasonal_weight
        center = w * level + (1.0 - w) * base.value
        if base.value > 0:
            scale = center / base.value
            return Expected(value=center, lower=base.lower * scale, upper=base.upper * scale)
        shift = center - base.value
        return Expected(value=center, lower=max(0.0, base.lower + shift), upper=base.upper + shift)

    def to_state(self) -> dict[str, Any]:
        return {
            "r": self.rolling.to_state(),
            "d": self.daily.to_state(),
            "w": self.weekly.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rolling.load_state(state.get("r", {}))
        self.daily.load_state(state.get("d", {}))
        self.weekly.load_state(state.get("w", {}))
