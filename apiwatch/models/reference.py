"""How often recent normal requests were slower than a given latency.

:class:`TailReference` is a decaying histogram of the latencies of requests
in buckets judged normal, on the sketch's logarithmic bins coarsened by
``COARSEN`` (about 4 % wide at the sketch's 1 %), so a series' reference costs
a few dozen numbers whatever its traffic. Each learned bucket first multiplies
the weights by ``1 - 1/memory``, so the reference spans about ``memory``
buckets, like the rolling baseline beside it. :meth:`TailReference.exceed`
splits a pooled bucket sketch at the same bin edge as :meth:`TailReference.tail`,
so "requests slower than x now" and "requests slower than x usually" are
counted the same way.

>>> from apiwatch.models.sketch import LogSketch
>>> s = LogSketch(); s.add(100.0, 95); s.add(400.0, 5)
>>> r = TailReference(memory=100)
>>> r.add(s)
>>> above, total = r.tail(300.0)
>>> round(above, 1), round(total, 1)
(5.0, 100.0)
>>> r.exceed(s, 300.0), r.exceed(s, 50.0)
(5, 100)
>>> usual_p95 = r.quantile(0.95); 100 <= usual_p95 < 104, r.tail(usual_p95)[0]
(True, 5.0)
"""

from __future__ import annotations

import math
from typing import Any

from apiwatch.models.sketch import DEFAULT_ALPHA, MIN_VALUE, ZERO_BIN, LogSketch, gamma_of

#: Sketch bins merged into one reference bin.
COARSEN = 2
#: Weights below this are dropped, so bins the series left long ago cost nothing.
_NEGLIGIBLE = 1e-3


def _coarse(i: int) -> int:
    return ZERO_BIN if i == ZERO_BIN else i // COARSEN


class TailReference:
    """Decaying counts of recent normal latencies on coarse logarithmic bins.

    Parameters
    ----------
    memory
        Buckets over which the reference decays to ``1/e``.
    alpha
        Relative accuracy of the sketches it is fed (their bin layout).
    """

    __slots__ = ("_log_gamma", "alpha", "bins", "decay", "memory", "total")

    def __init__(self, memory: int, alpha: float = DEFAULT_ALPHA) -> None:
        if memory < 1:
            raise ValueError(f"memory must be at least 1 bucket, got {memory}")
        self.memory = memory
        self.alpha = alpha
        self._log_gamma = math.log(gamma_of(alpha))
        self.decay = 1.0 - 1.0 / memory
        self.bins: dict[int, float] = {}
        self.total = 0.0

    def add(self, sketch: LogSketch) -> None:
        """Age the reference by one bucket, then count ``sketch``'s requests in it."""
        if sketch.alpha != self.alpha:
            raise ValueError(f"reference has alpha {self.alpha}, sketch {sketch.alpha}")
        d = self.decay
        self.bins = {k: w * d for k, w in self.bins.items() if w * d >= _NEGLIGIBLE}
        for i, c in sketch.bins.items():
            k = _coarse(i)
            self.bins[k] = self.bins.get(k, 0.0) + c
        self.total = sum(self.bins.values())

    def _edge(self, x: float) -> int:
        """The coarse bin holding ``x``: requests in later bins count as slower."""
        if x <= MIN_VALUE:
            return ZERO_BIN
        return _coarse(math.ceil(math.log(x) / self._log_gamma))

    def tail(self, x: float) -> tuple[float, float]:
        """(weight of requests slower than ``x``, total weight)."""
        edge = self._edge(x)
        return sum(w for k, w in self.bins.items() if k > edge), self.total

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bin holding the weighted ``q``-quantile; None when empty."""
        if self.total <= 0:
            return None
        rank, seen = q * self.total, 0.0
        for k in sorted(self.bins):
            seen += self.bins[k]
            if seen >= rank:
                break
        if k == ZERO_BIN:
            return MIN_VALUE
        return math.exp((k * COARSEN + COARSEN - 1) * self._log_gamma)

    def exceed(self, sketch: LogSketch, x: float) -> int:
        """Requests of ``sketch`` slower than ``x``, on the same bin edge as :meth:`tail`."""
        edge = self._edge(x)
        return sum(c for i, c in sketch.bins.items() if _coarse(i) > edge)

    def to_state(self) -> dict[str, Any]:
        return {"bins": [[k, w] for k, w in self.bins.items()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.bins = {int(k): float(w) for k, w in state.get("bins", [])}
        self.total = sum(self.bins.values())
