"""Human-readable pieces shared by the chat and on-call payloads.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.alerts import Alert, AlertKind, AlertStatus, Expected, Observed, Severity
>>> a = Alert(fingerprint="f", kind=AlertKind.LATENCY_SPIKE, status=AlertStatus.FIRING,
...     severity=Severity.ERROR, summary="slow", started_at=datetime(2026, 1, 1, tzinfo=UTC),
...     observed=Observed(value=900, unit="ms", window_s=60, sample_size=120),
...     expected=Expected(value=120, lower=80, upper=200))
>>> observed_vs_expected(a)
'observed 900 ms vs expected 120 ms (80 to 200) over 60 s, n=120'
"""

from __future__ import annotations

from apiwatch.models.alerts import Alert


def _num(value: float) -> str:
    return f"{value:.4g}"


def observed_vs_expected(alert: Alert) -> str:
    """One line: what was measured against what the baseline expected; '' if neither."""
    obs, exp = alert.observed, alert.expected
    parts: list[str] = []
    unit = f" {obs.unit}" if obs and obs.unit else ""
    if obs is not None:
        parts.append(f"observed {_num(obs.value)}{unit}")
    if exp is not None:
        parts.append(f"expected {_num(exp.value)}{unit} ({_num(exp.lower)} to {_num(exp.upper)})")
    text = " vs ".join(parts)
    if obs is not None:
        text += f" over {_num(obs.window_s)} s, n={obs.sample_size}"
    return text


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
