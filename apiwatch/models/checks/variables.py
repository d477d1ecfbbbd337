"""The variables a check starts with, taken from the runner's environment.

>>> from apiwatch.models.checks.definition import Variable
>>> values, redactor = resolve({"base": Variable(env="BASE"), "pw": Variable(env="PW", secret=True)},
...                            {"BASE": "http://api", "PW": "hunter2"})
>>> values["base"], redactor.text("login with hunter2")
('http://api', 'login with [redacted]')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from apiwatch.models.checks.definition import CheckDefinition, Variable
from apiwatch.models.checks.redaction import Redactor


class MissingVariable(ValueError):
    """An environment variable a check needs is not set and has no default."""


def resolve(
    variables: Mapping[str, Variable], env: Mapping[str, str]
) -> tuple[dict[str, str], Redactor]:
    """Values of the declared variables, and a redactor that knows the secret ones."""
    values: dict[str, str] = {}
    redactor = Redactor()
    for name, var in variables.items():
        value = var.value if var.env is None else env.get(var.env, var.default)
        if value is None:
            raise MissingVariable(f"variable {name!r}: environment variable {var.env} is not set")
        values[name] = value
        if var.secret:
            redactor.add(value)
    return values, redactor


def missing_environment(checks: Iterable[CheckDefinition], env: Mapping[str, str]) -> list[str]:
    """Environment variables some check needs that are neither set nor defaulted."""
    return sorted(
        {
            var.env
            for check in checks
            for var in check.variables.values()
            if var.env is not None and var.default is None and var.env not in env
        }
    )
