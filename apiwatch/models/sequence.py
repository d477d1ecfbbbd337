"""How surprising is a value's *place in the sequence*, not its size?

A value can be ordinary on its own and still break the series' pattern: an
oscillation that starts where the series used to sit still, a regular spike
that lands a row early, a plateau where a ramp was usual. Level and change
residuals miss these; a sequence model does not.

:class:`SequenceSurprise` turns each value into a symbol, its quantile bin
among the recent values (so the alphabet follows drift and means the same on
every series), and predicts the next symbol with an equal mixture of add-alpha
Markov models of order 0 to ``order`` fitted on the last ``history`` symbols.
The surprisal ``-ln P(symbol)`` is what it reports; the caller judges it
against its own past surprisals, like any residual. Values beyond everything
in the window get symbols of their own (above, below), so a new extreme is a
new symbol whatever the context.

A value that recurs exactly (the levels of a square wave, a quantized
metric) keeps the symbol it last had while its rank stays within a bin of
it. The share of each level in the window drifts, and a level sitting on a
quantile edge would otherwise flip symbol back and forth, each flip making
its every transition look new for a while.

Forgetting is exact: the counts are always those of the transitions inside the
kept symbols, so a pattern that stops recurring is unlearned after
``history`` rows, and the state is just the recent values, their symbols and
the symbols held by recurring values.

>>> seq = SequenceSurprise(bins=4, order=2, history=400, min_values=20)
>>> usual = [seq.update(float(t % 4)) for t in range(600)]
>>> odd = seq.update(3.0)  # after ...1, 2, 3 came 0 every time
>>> round(max(usual[-100:]), 2), round(odd, 2)  # nats
(0.29, 2.47)
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any


class SequenceSurprise:
    """Surprisal of each value's quantile symbol under a variable-order Markov mixture.

    Parameters
    ----------
    bins
        Quantile bins of the recent values (the alphabet, plus "above" and "below").
    order
        Longest context, in symbols; orders 0..order are mixed with equal weight.
    history
        Values kept for the quantiles, and symbols (transitions) kept for the counts.
    min_values
        Values needed before any symbol (and surprisal) is given.
    alpha
        Add-alpha smoothing of each order's prediction.
    """

    __slots__ = (
        "_counts",
        "_held",
        "_pending",
        "_sorted",
        "alpha",
        "bins",
        "history",
        "min_values",
        "order",
        "symbols",
        "values",
    )

    #: Share of the kept range a value must pass it by to get an extreme's symbol.
    EXTREME_TOLERANCE = 0.25

    def __init__(
        self, bins: int, order: int, history: int, min_values: int, alpha: float = 0.1
    ) -> None:
        if bins < 2 or order < 0 or history < 2 or alpha <= 0:
            raise ValueError("need bins >= 2, order >= 0, history >= 2 and alpha > 0")
        self.bins = bins
        self.order = order
        self.history = history
        self.min_values = max(1, min_values)
        self.alpha = alpha
        self.values: deque[float] = deque(maxlen=history)
        self._sorted: list[float] = []
        self.symbols: deque[int] = deque(maxlen=history + order)
        # Per order k: context (the k symbols before) -> counts of the symbol that followed.
        self._counts: list[dict[tuple[int, ...], list[int]]] = [{} for _ in range(order + 1)]
        self._pending: tuple[float, int | None, float | None] | None = None
        # Symbol last given to each value that recurs exactly in the window.
        self._held: dict[float, int] = {}

    @property
    def alphabet(self) -> int:
        return self.bins + 2

    def symbol(self, x: float) -> int | None:
        """Quantile bin of ``x`` among the kept values; ``bins`` above all, ``bins + 1`` below.

        ``x`` takes the bin of the kept value nearest to it, and a run of equal
        values the bin of its lowest rank, so a series that dwells on a few
        levels keeps each level in its own bins however its noise falls (a new
        top of one level's noise is not the next level's bottom). "Above" and
        "below" need the value beyond the kept range by ``EXTREME_TOLERANCE``
        of it (HTM's spatial anomaly uses 5% of an all-time range; a rolling
        range is passed far more often), or every new top of the noise would be
        a new symbol.
        """
        srt = self._sorted
        n = len(srt)
        if n < self.min_values:
            return None
        lo, hi = srt[0], srt[-1]
        slack = self.EXTREME_TOLERANCE * (hi - lo)
        if x > hi + slack:
            return self.bins
        if x < lo - slack:
            return self.bins + 1
        i = bisect.bisect_left(srt, x)
        if i == n or (i > 0 and x - srt[i - 1] < srt[i] - x):
            i = bisect.bisect_left(srt, srt[i - 1])
        s = min(self.bins - 1, i * self.bins // n)
        # A value that recurs exactly (a level of a square wave, a quantized
        # metric) keeps its symbol while its rank stays within a bin of it: the
        # share of each level in the window drifts, and a level sitting on a
        # quantile edge would otherwise flip symbol, making its every
        # transition look new.
        held = self._held.get(x)
        return held if held is not None and abs(held - s) <= 1 else s

    def surprisal(self, x: float) -> float | None:
        """``-ln P(symbol of x | recent symbols)``; None until there is something to predict."""
        pending = self._pending
        if pending is not None and pending[0] == x:
            return pending[2]
        s = self.symbol(x)
        result: float | None = None
        if s is not None:
            total_p, used = 0.0, 0
            recent = self._recent()
            for k in range(self.order + 1):
                if k > len(recent):
                    break
                counts = self._counts[k].get(tuple(recent[len(recent) - k :]))
                if counts is None:
                    continue
                total = sum(counts)
                total_p += (counts[s] + self.alpha) / (total + self.alpha * self.alphabet)
                used += 1
            if used:
                result = -math.log(total_p / used)
        self._pending = (x, s, result)
        return result

    def learn(self, x: float) -> None:
        """Add ``x``: its transition enters the counts, the oldest one leaves."""
        pending = self._pending
        s = pending[1] if pending is not None and pending[0] == x else self.symbol(x)
        self._pending = None
        if s is not None:
            if len(self.symbols) == self.symbols.maxlen:
                self._forget_oldest()
            self._count(self._recent(), s, +1)
            self.symbols.append(s)
        if len(self.values) == self.values.maxlen:
            old = self.values[0]
            at = bisect.bisect_left(self._sorted, old)
            del self._sorted[at]
            if old in self._held and not self._recurs(old):
                del self._held[old]
        self.values.append(x)
        bisect.insort(self._sorted, x)
        if s is not None and s < self.bins and self._recurs(x):
            self._held[x] = s

    def _recurs(self, x: float) -> bool:
        """Whether ``x`` is in the window at least twice."""
        i = bisect.bisect_left(self._sorted, x)
        return i + 1 < len(self._sorted) and self._sorted[i + 1] == x

    def update(self, x: float) -> float | None:
        """Surprisal of ``x``, then learn it."""
        s = self.surprisal(x)
        self.learn(x)
        return s

    # -- counts ---------------------------------------------------------------

    def _recent(self) -> list[int]:
        """The last ``order`` symbols (fewer at the start)."""
        n = min(self.order, len(self.symbols))
        return [self.symbols[i] for i in range(-n, 0)]

    def _count(self, before: list[int], s: int, delta: int) -> None:
        """Add ``delta`` to the order-0..K transitions into ``s`` after the symbols ``before``."""
        for k in range(min(self.order, len(before)) + 1):
            ctx = tuple(before[len(before) - k :])
            counts = self._counts[k].get(ctx)
            if counts is None:
                counts = self._counts[k][ctx] = [0] * self.alphabet
            counts[s] += delta
            if delta < 0 and not any(counts):
                del self._counts[k][ctx]

    def _forget_oldest(self) -> None:
        # The transitions that used the oldest symbol: the order-k one ending k symbols later.
        kept = list(self.symbols)
        for k in range(min(self.order, len(kept) - 1) + 1):
            ctx = tuple(kept[0:k])
            counts = self._counts[k][ctx]
            counts[kept[k]] -= 1
            if not any(counts):
                del self._counts[k][ctx]
        self.symbols.popleft()

    def _rebuild(self) -> None:
        self._counts = [{} for _ in range(self.order + 1)]
        kept = list(self.symbols)
        for j, s in enumerate(kept):
            self._count(kept[max(0, j - self.order) : j], s, +1)

    # -- state ------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "symbols": list(self.symbols),
            "held": [[x, s] for x, s in self._held.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._pending = None
        self.values = deque(map(float, state.get("values") or []), maxlen=self.history)
        self._sorted = sorted(self.values)
        self._held = {float(x): int(s) for x, s in state.get("held") or []}
        self.symbols = deque(map(int, state.get("symbols") or []), maxlen=self.history + self.order)
        self._rebuild()
