"""SLO burn rate: the multiwindow, multi-burn-rate rule of the Google SRE workbook.

An objective (availability, latency or both) is declared in config for the
series whose labels match. The error budget is ``1 - target``; the burn rate
of a window is its bad fraction divided by the budget, so a burn rate of 1
spends the budget exactly over the SLO period. A rule such as "1 h and 5 min
both above 14.4" (2 % of a 30-day budget in an hour) fires fast on a severe
outage; "6 h and 30 min above 6" catches a slower leak. Requiring the short
window too makes the alert reset soon after the problem stops.

Counts are kept per time slot (default one minute) in a ring as long as the
longest window, so the state is bounded whatever the bucket width.

>>> from apiwatch.models.buckets import BucketSummary
>>> from apiwatch.models.detection_config import SloConfig, SloObjective
>>> cfg = SloConfig(objectives=[SloObjective(name="shop", service="shop", availability=0.999)])
>>> d = SloBurn(cfg, cfg.objectives[0])
>>> def bucket(t, n, e):
...     return BucketSummary(series="s", labels={}, start_ms=t * 10_000, width_s=10, count=n,
...                          errors_5xx=e)
>>> for t in range(30):
...     d.learn(bucket(t, 100, 0), d.judge(bucket(t, 100, 0)))
>>> d.judge(bucket(30, 100, 0)).anomalous, d.judge(bucket(30, 100, 50)).anomalous
(False, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from apiwatch.models.alerts import AlertKind, Expected, Observed, Severity
from apiwatch.models.buckets import BucketSummary
from apiwatch.models.detection_config import SloConfig, SloObjective
from apiwatch.models.detectors.base import BucketDetector, Verdict
from apiwatch.models.sketch import LogSketch, gamma_of

# Per slot: [slot index, requests, 5xx, slower than the latency threshold]
Slot = list[int]


def slower_than(sketch: LogSketch, threshold_ms: float) -> int:
    """Requests in ``sketch`` above ``threshold_ms`` (to the sketch's accuracy).

    >>> s = LogSketch(); s.add(10.0, 90); s.add(900.0, 10)
    >>> slower_than(s, 500.0)
    10
    """
    if sketch.count == 0:
        return 0
    if threshold_ms <= 0:
        return sketch.count
    limit = math.ceil(math.log(threshold_ms) / math.log(gamma_of(sketch.alpha)))
    return sum(c for i, c in sketch.bins.items() if i > limit)


class SloBurn(BucketDetector[BucketSummary]):
    """Flags an SLO whose error budget burns too fast on both windows of a rule.

    Parameters
    ----------
    cfg
        Burn-rate rules (windows in seconds), slot width, minimum requests.
    objective
        The availability and/or latency objective this series is held to.
    """

    kind: ClassVar[AlertKind] = AlertKind.SLO_BURN

    def __init__(self, cfg: SloConfig, objective: SloObjective) -> None:
        self.cfg = cfg
        self.objective = objective
        self.lifecycle = cfg.lifecycle
        self.slot_ms = int(cfg.slot_s * 1000)
        self.n_slots = max(1, math.ceil(max(w.long_s for w in cfg.windows) / cfg.slot_s))
        self.slots: list[Slot] = []  # oldest first, at most n_slots

    def _counts(self, item: BucketSummary) -> Slot:
        latency = self.objective.latency
        slow = slower_than(item.sketch(), latency.threshold_ms) if latency else 0
        return [item.start_ms // self.slot_ms, item.count, item.errors_5xx, slow]

    def _window(self, slots: list[Slot], now: int, span_s: float) -> tuple[int, int, int]:
        first = now - math.ceil(span_s / self.cfg.slot_s) + 1
        chosen = [s for s in slots if s[0] >= first]
        return (sum(s[1] for s in chosen), sum(s[2] for s in chosen), sum(s[3] for s in chosen))

    def _with(self, item: BucketSummary) -> list[Slot]:
        counts = self._counts(item)
        slots = [list(s) for s in self.slots if s[0] > counts[0] - self.n_slots]
        if slots and slots[-1][0] == counts[0]:
            slots[-1] = [
                counts[0],
                *(a + b for a, b in zip(slots[-1][1:], counts[1:], strict=True)),
            ]
        else:
            slots.append(counts)
        return slots

    def judge(self, item: BucketSummary) -> Verdict:
        slots = self._with(item)
        now = slots[-1][0]
        objectives: list[tuple[str, float, int]] = []  # (name, target, column)
        if self.objective.availability is not None:
            objectives.append(("availability", self.objective.availability, 1))
        if self.objective.latency is not None:
            objectives.append(("latency", self.objective.latency.target, 2))
        worst: tuple[float, str, Any, float, int, float] | None = None
        judged = False
        for rule in self.cfg.windows:
            long_n, *long_bad = self._window(slots, now, rule.long_s)
            short_n, *short_bad = self._window(slots, now, rule.short_s)
            if short_n < self.cfg.min_requests:
                continue
            judged = True
            for name, target, col in objectives:
                budget = 1.0 - target
                burn_long = long_bad[col - 1] / long_n / budget
                burn_short = short_bad[col - 1] / short_n / budget
                burn = min(burn_long, burn_short)
                ratio = burn / rule.burn_rate
                if worst is None or ratio > worst[0]:
                    worst = (ratio, name, rule, burn_long, long_n, burn_short)
        if not judged or worst is None:
            return Verdict.unknown(f"fewer than {self.cfg.min_requests} requests in short windows")
        ratio, name, rule, burn_long, long_n, burn_short = worst
        severity = (
            Severity(rule.severity)
            if rule.severity in Severity._value2member_map_
            else (Severity.ERROR)
        )
        return Verdict(
            anomalous=ratio > 1.0,
            score=ratio / (1.0 + ratio),
            observed=Observed(
                value=burn_long, unit="burn rate", window_s=rule.long_s, sample_size=long_n
            ),
            expected=Expected(value=1.0, lower=0.0, upper=rule.burn_rate),
            summary=(
                f"SLO {self.objective.name!r} ({name}) burning its error budget {burn_long:.1f}x "
                f"over {rule.long_s / 60:.0f} min and {burn_short:.1f}x over "
                f"{rule.short_s / 60:.0f} min (limit {rule.burn_rate}x)"
            ),
            severity=severity,
            details={"objective": self.objective.name, "sli": name, "burn_short": burn_short},
            sample_event_ids=tuple(item.sample_event_ids),
        )

    def learn(self, item: BucketSummary, verdict: Verdict) -> None:
        # An SLO counts everything, the incident included: that is what the budget is for.
        self.slots = self._with(item)

    def to_state(self) -> dict[str, Any]:
        return {"slots": self.slots}

    def load_state(self, state: dict[str, Any]) -> None:
        self.slots = [[int(x) for x in s] for s in state.get("slots", [])][-self.n_slots :]
