"""Label matchers, Alertmanager style: ``name=value``, ``name!=value``, ``name=~re``, ``name!~re``.

Routes, inhibition rules and silences all select alerts with matchers. An
alert's label set for matching is its ``labels`` plus ``kind`` and
``severity`` (see :func:`alert_labels`), so ``kind=latency_spike`` works
without the detector having to copy the kind into the labels. A missing label
matches as the empty string, as in Alertmanager, so ``team!=db`` matches an
alert with no ``team`` label. Regexes are fully anchored.

>>> m = Matcher.parse("route=~/users/.*")
>>> m.matches({"route": "/users/{id}"}), m.matches({"route": "/orders"})
(True, False)
>>> str(Matcher.parse('severity != "info"'))
'severity!=info'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from apiwatch.models.alerts import Alert

_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in (MatchOp.RE, MatchOp.NRE):
            try:
                compiled = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise ValueError(f"bad regex in matcher {self}: {exc}") from exc
            object.__setattr__(self, "_regex", compiled)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name<op>value``; the value may be double-quoted."""
        found = _SYNTAX.match(text)
        if found is None:
            raise ValueError(
                f"bad matcher {text!r}: expected name=value, name!=value, name=~regex "
                "or name!~regex"
            )
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return cls(name, MatchOp(op), value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self._regex is not None:
            hit = self._regex.fullmatch(value) is not None
            return hit if self.op is MatchOp.RE else not hit
        return (value == self.value) if self.op is MatchOp.EQ else (value != self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{self.value}"


def _to_matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return Matcher.parse(value)
    raise ValueError(f"a matcher must be a string such as 'service=shop', not {value!r}")


#: A matcher in a pydantic model: written and read as its string form.
MatcherField = Annotated[
    Matcher, BeforeValidator(_to_matcher), PlainSerializer(str, return_type=str)
]


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (so no matchers match everything).

    >>> match_all([Matcher.parse("a=1"), Matcher.parse("b=~x|y")], {"a": "1", "b": "y"})
    True
    """
    return all(m.matches(labels) for m in matchers)


def alert_labels(alert: Alert) -> dict[str, str]:
    """The label set matchers see: the alert's labels plus ``kind`` and ``severity``."""
    return {**alert.labels, "kind": alert.kind.value, "severity": alert.severity.value}
