"""Assertion evaluation: a step's response against its assertions, with readable messages.

>>> from apiwatch.models.checks.response import Response
>>> r = Response(200, [("content-type", "application/json")], '{"balance": -5}', 42.0)
>>> res = evaluate(JsonPathAssertion(jsonpath="$.balance", greater_than=0), r)
>>> res.passed, res.message
(False, '$.balance: expected greater than 0, got -5')
>>> evaluate(StatusAssertion(status=[200, 201]), r).passed
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jsonpath
import orjson
from jsonschema.validators import validator_for

from apiwatch.models.checks.definition import (
    Assertion,
    HeaderAssertion,
    JsonPathAssertion,
    JsonSchemaAssertion,
    Predicate,
    ResponseTimeAssertion,
    StatusAssertion,
)
from apiwatch.models.checks.response import NotJson, Response
from apiwatch.models.events import AssertionResult

#: Longest actual value kept in a result, so a huge body never bloats a message.
MAX_ACTUAL_CHARS = 512


def evaluate_all(assertions: Sequence[Assertion], response: Response) -> list[AssertionResult]:
    """Evaluate every assertion; without a status assertion, 4xx and 5xx fail the step."""
    results = [evaluate(a, response) for a in assertions]
    if not any(isinstance(a, StatusAssertion) for a in assertions):
        ok = response.status_code < 400
        results.insert(
            0,
            AssertionResult(
                kind="status",
                passed=ok,
                expected="< 400",
                actual=response.status_code,
                message=None if ok else f"status {response.status_code}, expected below 400",
            ),
        )
    return results


def evaluate(assertion: Assertion, response: Response) -> AssertionResult:
    if isinstance(assertion, StatusAssertion):
        return _status(assertion, response)
    if isinstance(assertion, ResponseTimeAssertion):
        return _response_time(assertion, response)
    if isinstance(assertion, HeaderAssertion):
        return _header(assertion, response)
    if isinstance(assertion, JsonPathAssertion):
        return _jsonpath(assertion, response)
    return _json_schema(assertion, response)


def _status(a: StatusAssertion, r: Response) -> AssertionResult:
    ok = r.status_code in a.codes
    expected = a.status
    message = None if ok else f"status {r.status_code}, expected {_or(a.codes)}"
    return AssertionResult(
        kind="status", passed=ok, expected=expected, actual=r.status_code, message=message
    )


def _response_time(a: ResponseTimeAssertion, r: Response) -> AssertionResult:
    limit = a.response_time_ms.less_than
    ok = r.elapsed_ms < limit
    message = None if ok else f"response time {r.elapsed_ms:.0f} ms, expected below {limit:g} ms"
    return AssertionResult(
        kind="response_time",
        passed=ok,
        expected={"less_than": limit},
        actual=round(r.elapsed_ms, 3),
        message=message,
    )


def _header(a: HeaderAssertion, r: Response) -> AssertionResult:
    value = r.header(a.header)
    subject = f"header {a.header!r}"
    expected = {"header": a.header, a.operator: a.operand}
    if a.operator == "exists":
        return _result("header", expected, value, (value is not None) == a.exists, subject, a)
    if value is None:
        return _fail("header", expected, None, f"{subject}: missing")
    ok, why = compare(a, value)
    return _result("header", expected, value, ok, subject, a, why)


def _jsonpath(a: JsonPathAssertion, r: Response) -> AssertionResult:
    expected = {"jsonpath": a.jsonpath, a.operator: a.operand}
    try:
        body = r.json()
    except NotJson as exc:
        return _fail("jsonpath", expected, None, f"{a.jsonpath}: {exc}")
    matches = jsonpath.findall(a.jsonpath, body)
    if a.operator == "exists":
        return _result("jsonpath", expected, len(matches), bool(matches) == a.exists, a.jsonpath, a)
    if not matches:
        return _fail("jsonpath", expected, None, f"{a.jsonpath}: matched nothing")
    value = matches[0]
    ok, why = compare(a, value)
    return _result("jsonpath", expected, value, ok, a.jsonpath, a, why)


def _json_schema(a: JsonSchemaAssertion, r: Response) -> AssertionResult:
    expected = {"json_schema": a.json_schema}
    try:
        body = r.json()
    except NotJson as exc:
        return _fail("json_schema", expected, None, f"json_schema: {exc}")
    error = next(iter(validator_for(a.json_schema)(a.json_schema).iter_errors(body)), None)
    if error is None:
        return AssertionResult(kind="json_schema", passed=True, expected=expected, actual=None)
    where = error.json_path
    return _fail(
        "json_schema", expected, _clip(error.instance), f"json_schema: {where}: {error.message}"
    )


def compare(p: Predicate, actual: Any) -> tuple[bool, str | None]:
    """Apply a predicate's operator; on failure, say why when the reason is not obvious.

    >>> compare(Predicate(contains="json"), "application/json")
    (True, None)
    >>> compare(Predicate(less_than=5), "n/a")
    (False, 'not a number')
    """
    op, operand = p.operator, p.operand
    if op == "equals":
        return actual == operand, None
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(operand, str) and operand in actual, None
        if isinstance(actual, list | dict):
            return operand in actual, None
        return False, "not a string, list or object"
    if op == "matches":
        text = actual if isinstance(actual, str) else orjson.dumps(actual).decode()
        return re.search(operand, text) is not None, None
    number = _number(actual)
    if number is None:
        return False, "not a number"
    return (number < operand if op == "less_than" else number > operand), None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _result(
    kind: str,
    expected: dict[str, Any],
    actual: Any,
    ok: bool,
    subject: str,
    p: Predicate,
    why: str | None = None,
) -> AssertionResult:
    if ok:
        return AssertionResult(kind=kind, passed=True, expected=expected, actual=_clip(actual))
    if p.operator == "exists":
        message = f"{subject}: expected to exist, but it is missing"
        if not p.exists:
            message = f"{subject}: expected not to exist, but it is there"
    else:
        wording = f"{p.operator.replace('_', ' ')} {_show(p.operand)}"
        detail = f" ({why})" if why else ""
        message = f"{subject}: expected {wording}, got {_show(_clip(actual))}{detail}"
    return _fail(kind, expected, actual, message)


def _fail(kind: str, expected: Any, actual: Any, message: str) -> AssertionResult:
    return AssertionResult(
        kind=kind, passed=False, expected=expected, actual=_clip(actual), message=message
    )


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # "greater than 0", not "0.0": limits are parsed as floats
    return repr(value) if isinstance(value, str) else orjson.dumps(value).decode()


def _or(codes: list[int]) -> str:
    return str(codes[0]) if len(codes) == 1 else "one of " + ", ".join(map(str, codes))


def _clip(value: Any) -> Any:
    """Keep an actual value small: long strings and big structures are cut."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ACTUAL_CHARS else value[:MAX_ACTUAL_CHARS] + "…"
    if isinstance(value, list | dict):
        text = orjson.dumps(value).decode()
        return value if len(text) <= MAX_ACTUAL_CHARS else text[:MAX_ACTUAL_CHARS] + "…"
    return value
