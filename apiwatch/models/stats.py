"""Small exact tail probabilities for count tests, in plain Python.

Detectors judge counts (errors among requests, requests per bucket) against a
baseline rate; a z-score on a rate ignores how few samples a quiet bucket has,
so they use the binomial and Poisson tails instead: "3 errors out of 4" at a
1 % baseline is surprising, "2 out of 3" at night with a 20 % baseline is not.
Terms are summed in log space from the observed count outward and stop once
they no longer change the sum, so the cost stays small for large counts.

>>> round(binomial_sf(3, 4, 0.01), 7), round(binomial_sf(2, 3, 0.2), 3)
(4e-06, 0.104)
>>> round(beta_binomial_sf(3, 4, 1.0, 99.0), 6)  # a 1 % rate known from ~100 trials
2.3e-05
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


def binomial_isf(alpha: float, n: int, p: float) -> int:
    """The least x with P(X >= x) < alpha for X ~ Binomial(n, p) (n + 1 if none).

    Walks down from far in the upper tail, adding terms by the ratio of
    neighbours until the tail reaches ``alpha``: a few dozen multiplications
    where a bisection over :func:`binomial_sf` sums thousands of terms.

    >>> binomial_isf(1e-4, 100, 0.01), binomial_isf(0.5, 10, 0.5), binomial_isf(0.1, 5, 0.0)
    (7, 6, 1)
    >>> all(binomial_sf(binomial_isf(a, n, 0.03), n, 0.03) < a
    ...     <= binomial_sf(binomial_isf(a, n, 0.03) - 1, n, 0.03)
    ...     for a in (1e-2, 1e-5) for n in (5, 60, 1200))
    True
    """
    if p <= 0.0:
        return 1
    if p >= 1.0:
        return n + 1
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    k = min(n, math.ceil(mean + 12.0 * sd + 12.0))
    # Terms are kept relative to the first one, log_scale, and rescaled before they overflow.
    log_scale = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    log_alpha = math.log(alpha)
    odds = (1.0 - p) / p
    term, total = 1.0, 0.0
    while k >= 0:
        total += term
        if math.log(total) + log_scale >= log_alpha:
            return k + 1
        term *= k / (n - k + 1) * odds
        k -= 1
        if term > 1e250:
            term, total, log_scale = term * 1e-250, total * 1e-250, log_scale + 250 * math.log(10)
    return 0


def beta_binomial_sf(x: int, n: int, a: float, b: float) -> float:
    """P(X >= x) for X ~ BetaBinomial(n, a, b).

    The count among ``n`` new trials when the rate itself is only known from
    earlier ones: after ``m`` successes in ``N`` trials, ``a = m + 1/2`` and
    ``b = N - m + 1/2`` (Jeffreys prior). A rate learned from few trials makes
    the tail heavier than the binomial's, so a thin history alarms less.
    """
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if a <= 0.0 or b <= 0.0:
        raise ValueError(f"beta-binomial needs a, b > 0, got {a}, {b}")
    lg = math.lgamma
    const = lg(n + 1) + lg(a + b) - lg(a) - lg(b) - lg(n + a + b)

    def log_term(k: int) -> float:
        return const - lg(k + 1) - lg(n - k + 1) + lg(k + a) + lg(n - k + b)

    if x <= n * a / (a + b):
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
