"""``{{ name }}`` variables in URLs, headers and bodies.

>>> render("{{ base }}/users/{{id}}", {"base": "http://api", "id": "42"})
'http://api/users/42'
>>> sorted(names_in({"user": "{{ who }}", "tags": ["{{ tag }}", 3]}))
['tag', 'who']
>>> render("{{ nope }}", {})
Traceback (most recent call last):
...
apiwatch.models.checks.templating.UndefinedVariable: undefined variable 'nope'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class UndefinedVariable(KeyError):
    """A template names a variable that no earlier step or the environment defined."""

    def __str__(self) -> str:
        return f"undefined variable {self.args[0]!r}"


def render(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise UndefinedVariable(name)
        return variables[name]

    return _VAR.sub(value, text)


def render_json(value: Any, variables: Mapping[str, str]) -> Any:
    """Render every string inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, list):
        return [render_json(v, variables) for v in value]
    if isinstance(value, dict):
        return {render(str(k), variables): render_json(v, variables) for k, v in value.items()}
    return value


def names_in(value: Any) -> Iterator[str]:
    """Every variable name a JSON-like value refers to."""
    if isinstance(value, str):
        yield from _VAR.findall(value)
    elif isinstance(value, list):
        for v in value:
            yield from names_in(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from names_in(str(k))
            yield from names_in(v)
