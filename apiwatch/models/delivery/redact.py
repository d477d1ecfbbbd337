"""Keep secrets out of anything written down: logs, dead letters, the notifications log.

>>> redact("POST https://hooks.slack.com/services/T0/B0/XyZ failed", ["https://hooks.slack.com/services/T0/B0/XyZ"])
'POST *** failed'
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every (non-empty) secret, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
