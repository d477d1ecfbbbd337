"""Small exact tail probabilities for count tests, in plain Python.

Detectors judge counts (errors among requests, requests per bucket) against a
baseline rate; a z-score on a rate ignores how few samples a quiet bucket has,
so they use exact tails instead: "3 errors out of 4" at a 1 % baseline is
surprising, "2 out of 3" at night with a 20 % baseline is not. The rate is
itself estimated from a finite history, so the error and latency tests use
the beta-binomial (the binomial, widened by that uncertainty); volume uses
the Poisson. Terms are summed in log space from the observed count outward
and stop once they no longer change the sum, so the cost stays small for
large counts.

>>> round(beta_binomial_sf(3, 4, 1.0, 99.0), 6)  # a 1 % rate known from ~100 trials
2.3e-05
>>> round(beta_binomial_sf(3, 4, 100.0, 9900.0), 7)  # ... from ~10,000: nearly binomial
4.1e-06
>>> round(beta_binomial_sf(2, 3, 20.0, 80.0), 3)  # 2 of 3 where 20 % usually fail
0.107
>>> round(poisson_sf(10, 2.0), 6), round(poisson_cdf(0, 10.0), 7)
(4.6e-05, 4.54e-05)
"""

from __future__ import annotations

import math
from collections.abc import Callable

_TINY = 1e-17


def _sum_terms(first: int, last: int, step: int, log_term: Callable[[int], float]) -> float:
    """Sum ``exp(log_term(k))`` from ``first`` towards ``last``, away from the mode.

    Past the mode terms only shrink, so the sum stops as soon as one of them is
    negligible next to the total (or underflows to zero); a few terms before the
    mode may still grow, which only delays that stop.
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


def _walk_down(alpha: float, k: int, log_pmf: float, ratio: Callable[[int], float]) -> int:
    """The least x with P(X >= x) < alpha, summing the pmf down from ``k``.

    ``log_pmf`` is log P(X = k), with P(X > k) negligible; ``ratio(j)`` is
    P(X = j - 1) / P(X = j). Terms are kept relative to the first one and
    rescaled before they overflow.
    """
    log_scale, log_alpha = log_pmf, math.log(alpha)
    term, total = 1.0, 0.0
    while k >= 0:
        total += term
        if math.log(total) + log_scale >= log_alpha:
            return k + 1
        term *= ratio(k)
        k -= 1
        if term > 1e250:
            term, total, log_scale = term * 1e-250, total * 1e-250, log_scale + 250 * math.log(10)
    return 0


def beta_binomial_isf(alpha: float, n: int, a: float, b: float) -> int:
    """The least x with P(X >= x) < alpha for X ~ BetaBinomial(n, a, b) (n + 1 if none).

    Walks down from far in the upper tail, adding terms by the ratio of
    neighbours until the tail reaches ``alpha``: a few dozen multiplications
    where a bisection over :func:`beta_binomial_sf` sums thousands of terms.

    >>> beta_binomial_isf(1e-5, 300, 30.5, 2970.5), beta_binomial_isf(1e-5, 300, 3e4, 2.97e6)
    (15, 14)
    """
    mean = n * a / (a + b)
    sd = math.sqrt(mean * b / (a + b) * (a + b + n) / (a + b + 1))
    lg = math.lgamma
    const = lg(n + 1) + lg(a + b) - lg(a) - lg(b) - lg(n + a + b)
    spread = 12.0
    while True:  # a small a gives a long right tail: start further out until it is negligible
        k = min(n, math.ceil(mean + spread * sd + 12.0))
        log_pmf = const - lg(k + 1) - lg(n - k + 1) + lg(k + a) + lg(n - k + b)
        if k == n or log_pmf < math.log(alpha) - 30.0:
            break
        spread *= 2.0
    return _walk_down(alpha, k, log_pmf, lambda j: j / (n - j + 1) * (n - j + b) / (j - 1 + a))


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
