"""Check YAML text to :class:`CheckDefinition`, with errors that name file, line and field.

One check per file. A check without an ``id`` takes the file's stem. Beyond
the schema, every ``{{ variable }}`` must be defined by ``variables`` or by an
earlier step's ``extract``, so a typo fails at load time, not at 3 a.m.

>>> text = '''
... name: Health
... steps:
...   - name: ping
...     url: "{{ base }}/health"
...     assert:
...       - jsonpath: $.ok
...         equals: true
...         contains: x
... '''
>>> parse_check(text, "checks/health.yaml")
Traceback (most recent call last):
...
apiwatch.models.checks.loading.CheckFileError: checks/health.yaml:7: steps[0].assert[0]: give exactly one of: equals, contains, exists, less_than, greater_than, matches
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

import yaml
from pydantic import ValidationError

from apiwatch.models.checks.definition import ASSERTION_TAGS, CheckDefinition
from apiwatch.models.checks.templating import names_in

Loc = tuple[str | int, ...]


class CheckFileError(ValueError):
    """A check file is not valid; ``str()`` is one line: ``file:line: field: problem``."""

    def __init__(self, source: str, line: int | None, field: str, problem: str) -> None:
        self.source, self.line, self.field, self.problem = source, line, field, problem
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field + ': ' if field else ''}{problem}")


def parse_check(text: str, source: str) -> CheckDefinition:
    """Validate one check file's text; ``source`` names the file in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise CheckFileError(source, mark.line + 1 if mark else 1, "", problem) from None
    if not isinstance(data, dict):
        raise CheckFileError(source, 1, "", "a check file must hold a mapping (id, name, steps)")
    data.setdefault("id", PurePath(source).stem)
    try:
        check = CheckDefinition.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = _clean(error["loc"])
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problem = problem.removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more)"
        raise CheckFileError(source, line_of(root, loc), field_name(loc), problem) from None
    for loc, problem in undefined_variables(check):
        raise CheckFileError(source, line_of(root, loc), field_name(loc), problem)
    return check


def undefined_variables(check: CheckDefinition) -> Iterable[tuple[Loc, str]]:
    """Where a step uses a variable that is not defined before it."""
    known = set(check.variables)
    for i, step in enumerate(check.steps):
        fields: list[tuple[Loc, Any]] = [(("url",), step.url), (("body",), step.body)]
        fields += [(("headers", k), v) for k, v in step.headers.items()]
        fields.append((("json",), step.json_body))
        for loc, value in fields:
            for name in names_in(value):
                if name not in known:
                    yield ("steps", i, *loc), f"undefined variable {name!r}"
        known.update(e.name for e in step.extract)


def duplicate_ids(checks: Iterable[tuple[str, CheckDefinition]]) -> CheckFileError | None:
    """The first check id used by two files, as an error naming both."""
    seen: dict[str, str] = {}
    for source, check in checks:
        if check.id in seen:
            return CheckFileError(
                source, 1, "id", f"duplicate check id {check.id!r} (also in {seen[check.id]})"
            )
        seen[check.id] = source
    return None


def _clean(loc: tuple[Any, ...]) -> Loc:
    # The discriminated union of assertions adds its tag right after the list index.
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (part in ASSERTION_TAGS and i > 0 and isinstance(loc[i - 1], int))
    )


def field_name(loc: Loc) -> str:
    """``steps[1].assert[0].jsonpath`` from a location tuple.

    >>> field_name(("steps", 1, "assert", 0, "jsonpath"))
    'steps[1].assert[0].jsonpath'
    """
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def line_of(root: yaml.Node | None, loc: Loc) -> int:
    """1-based line of the deepest YAML node along ``loc`` (a key's own line for mappings)."""
    if root is None:
        return 1
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
