"""Small exact tail probabilities for count tests, in plain Python.

Detectors judge counts (errors among requests, requests per bucket) against a
baseline rate; a z-score on a rate ignores how few samples a quiet bucket has,
so they use the binomial and Poisson tails instead: "3 errors out of 4" at a
1 % baseline is surprising, "2 out of 3" at night with a 20 % baseline is not.
Terms are summed in log space from the observed count outward and stop once
they no longer change the sum, so the cost stays small for large counts.

>>> round(binomial_sf(3, 4, 0.01), 7), round(binomial_sf(2, 3, 0.2), 3)
(4e-06, 0.104)
>>> round(poisson_sf(10, 2.0), 6), round(poisson_cdf(0, 10.0), 7)
(4.6e-05, 4.54e-05)
"""

from __future__ import annotations

import math
from collections.abc import Callable

_TINY = 1e-17


def _sum_terms(first: int, last: int, step: int, log_term: Callable[[int], float]) -> float:
    """Sum ``exp(log_term(k))`` from ``first`` towards ``last``, away from the mode.

    Terms only shrink in that direction, so the sum stops as soon as one of them
    is negligible (or underflows to zero).
    """
    total = 0.0
    k = first
    while (step > 0 and k <= last) or (step < 0 and k >= last):
        term = math.exp(log_term(k))
        total += term
        if term <= _TINY * total:
            break
        k += step
    return min(1.0, total)


def binomial_sf(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lnf = math.lgamma(n + 1)

    def log_term(k: int) -> float:
        return lnf - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq

    if x <= n * p:  # the tail holds most of the mass: sum the small side instead
        return max(0.0, 1.0 - _sum_terms(x - 1, 0, -1, log_term))
    return _sum_terms(x, n, 1, log_term)


def poisson_sf(x: int, lam: float) -> float:
    """P(X >= x) for X ~ Poisson(lam)."""
    if x <= 0:
        return 1.0
    if lam <= 0.0:
        return 0.0
    ll = math.log(lam)

    def log_term(k: int) -> float:
        return k * ll - lam - math.lgamma(k + 1)

    if x <= lam:
        return max(0.0, 1.0 - _sum_terms(x - 1, 0, -1, log_term))
    return _sum_terms(x, x + 100_000_000, 1, log_term)


def poisson_cdf(x: int, lam: float) -> float:
    """P(X <= x) for X ~ Poisson(lam)."""
    if x < 0:
        return 0.0
    return max(0.0, 1.0 - poisson_sf(x + 1, lam))
