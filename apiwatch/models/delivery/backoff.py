"""Retry timing: exponential backoff with jitter, ``Retry-After``, and retry tiers.

>>> from apiwatch.models.delivery.config import RetryConfig
>>> cfg = RetryConfig(base_delay_s=1, factor=2, max_delay_s=10, jitter=0.0, tiers=3)
>>> [backoff_delay(n, cfg) for n in (1, 2, 3, 4, 5)]
[1.0, 2.0, 4.0, 8.0, 10.0]
>>> [tier_for_delay(d, cfg) for d in (0.5, 1.0, 3.9, 4.0, 60.0)]
[0, 0, 1, 2, 2]
>>> parse_retry_after("7", now=datetime(2026, 1, 1, tzinfo=UTC))
7.0
>>> parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=datetime(2026, 1, 1, tzinfo=UTC))
30.0
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from apiwatch.models.delivery.config import RetryConfig


def backoff_delay(
    retry_number: int, cfg: RetryConfig, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry ``retry_number`` (1 = the first retry).

    The jitter spreads retries of many notifications failing at once, so a
    receiver that comes back is not hit by all of them in the same instant.
    """
    exponent = max(0, retry_number - 1)
    delay = min(cfg.max_delay_s, cfg.base_delay_s * cfg.factor**exponent)
    spread = delay * cfg.jitter * (2.0 * rand() - 1.0)
    return max(0.0, delay + spread)


def tier_for_delay(delay_s: float, cfg: RetryConfig) -> int:
    """The retry topic for a delay: the highest tier whose base delay is not above it.

    Tier ``i`` holds delays from ``base * factor**i`` up to the next tier's, so
    within one topic records come due in roughly the order they were written
    and waiting for the head of a partition holds nothing back for long.
    """
    tier = 0
    for i in range(cfg.tiers):
        if cfg.base_delay_s * cfg.factor**i <= delay_s:
            tier = i
    return tier


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
