"""What a synthetic check is: the models a check YAML file is validated against.

A check is a multi-step HTTP flow run on a schedule. Steps run in order; each
may extract variables from its response for the steps after it, and each has
assertions. Variables are written ``{{ name }}`` in URLs, headers and bodies;
they come from the runner's environment (``variables``) or from earlier
responses (``extract``). Values marked ``secret`` are never written to results
or logs. ``apiwatch checks schema`` prints this as JSON Schema.

>>> check = CheckDefinition.model_validate({
...     "id": "health", "name": "Health endpoint", "interval_s": 30,
...     "steps": [{"name": "ping", "url": "http://127.0.0.1:8000/health",
...                "assert": [{"status": 200}, {"jsonpath": "$.ok", "equals": True}]}]})
>>> step = check.steps[0]
>>> step.method, step.timeout_s, [a.kind for a in step.assertions]
('GET', 10.0, ['status', 'jsonpath'])
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import jsonpath
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from apiwatch.models.events import HTTP_METHODS

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def _check_optional_regex(value: str | None) -> str | None:
    return value if value is None else _check_regex(value)


def _check_jsonpath(value: str) -> str:
    try:
        jsonpath.compile(value)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"invalid JSONPath {value!r}: {str(exc).splitlines()[0]}") from None
    return value


def _check_optional_jsonpath(value: str | None) -> str | None:
    return value if value is None else _check_jsonpath(value)


class Variable(Strict):
    """A variable the runner provides: from its environment, or a literal value."""

    env: str | None = Field(None, description="Environment variable to read.")
    value: str | None = Field(None, description="A literal value (not for secrets).")
    default: str | None = Field(None, description="Used when the environment variable is unset.")
    secret: bool = Field(False, description="Never written to results or logs.")

    @model_validator(mode="after")
    def _one_source(self) -> Variable:
        if (self.env is None) == (self.value is None):
            raise ValueError("give exactly one of 'env' or 'value'")
        if self.value is not None and self.default is not None:
            raise ValueError("'default' only applies to 'env'")
        return self


class Extraction(Strict):
    """A variable taken from a response: JSONPath on the body, a header, or a regex.

    With ``regex`` the first capture group (or the whole match) is taken, from
    the header's value when ``header`` is given, else from the body text.
    """

    name: Name
    jsonpath: str | None = None
    header: str | None = None
    regex: str | None = None
    secret: bool = Field(False, description="Never written to results or logs.")

    _jp = field_validator("jsonpath")(_check_optional_jsonpath)
    _re = field_validator("regex")(_check_optional_regex)

    @model_validator(mode="after")
    def _one_source(self) -> Extraction:
        if self.jsonpath is not None and (self.header is not None or self.regex is not None):
            raise ValueError("'jsonpath' cannot be combined with 'header' or 'regex'")
        if self.jsonpath is None and self.header is None and self.regex is None:
            raise ValueError("give one of 'jsonpath', 'header' or 'regex'")
        return self


OPERATORS = ("equals", "contains", "exists", "less_than", "greater_than", "matches")


class Predicate(Strict):
    """Exactly one comparison, applied to a header value or a JSONPath match."""

    equals: Any = None
    contains: Any = None
    exists: bool | None = None
    less_than: float | None = None
    greater_than: float | None = None
    matches: str | None = None

    _re = field_validator("matches")(_check_optional_regex)

    @model_validator(mode="after")
    def _one_operator(self) -> Predicate:
        given = [op for op in OPERATORS if op in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of: {', '.join(OPERATORS)}")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if op in self.model_fields_set)

    @property
    def operand(self) -> Any:
        return getattr(self, self.operator)


class StatusAssertion(Strict):
    """The response status is this code, or one of these codes."""

    kind: ClassVar[str] = "status"
    status: int | list[int]

    @field_validator("status")
    @classmethod
    def _codes(cls, value: int | list[int]) -> int | list[int]:
        codes = value if isinstance(value, list) else [value]
        if not codes or any(not 100 <= c <= 599 for c in codes):
            raise ValueError("status codes must be between 100 and 599")
        return value

    @property
    def codes(self) -> list[int]:
        return self.status if isinstance(self.status, list) else [self.status]


class ResponseTimeLimit(Strict):
    less_than: float = Field(gt=0)


class ResponseTimeAssertion(Strict):
    """The step's response time, in milliseconds, is below a limit."""

    kind: ClassVar[str] = "response_time"
    response_time_ms: ResponseTimeLimit


class HeaderAssertion(Predicate):
    """A response header (case-insensitive name) satisfies one comparison."""

    kind: ClassVar[str] = "header"
    header: str = Field(min_length=1)


class JsonPathAssertion(Predicate):
    """The first JSONPath match in the JSON body satisfies one comparison."""

    kind: ClassVar[str] = "jsonpath"
    jsonpath: str

    _jp = field_validator("jsonpath")(_check_jsonpath)


class JsonSchemaAssertion(Strict):
    """The JSON body validates against a JSON Schema."""

    kind: ClassVar[str] = "json_schema"
    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            validator_for(value).check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


# Which key makes an assertion of which kind; the first key found decides.
_ASSERTION_KEYS = {
    "status": "status",
    "response_time_ms": "response_time",
    "header": "header",
    "jsonpath": "jsonpath",
    "json_schema": "json_schema",
}


def _assertion_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((kind for key, kind in _ASSERTION_KEYS.items() if key in value), None)
    return getattr(value, "kind", None)


Assertion = Annotated[
    Annotated[StatusAssertion, Tag("status")]
    | Annotated[ResponseTimeAssertion, Tag("response_time")]
    | Annotated[HeaderAssertion, Tag("header")]
    | Annotated[JsonPathAssertion, Tag("jsonpath")]
    | Annotated[JsonSchemaAssertion, Tag("json_schema")],
    Discriminator(
        _assertion_kind,
        custom_error_type="unknown_assertion",
        custom_error_message=f"an assertion needs one of: {', '.join(_ASSERTION_KEYS)}",
    ),
]
#: Tags the discriminated union adds to error locations (dropped when reporting).
ASSERTION_TAGS = frozenset(_ASSERTION_KEYS.values())


class Step(Strict):
    """One HTTP call of a check."""

    name: str = Field(min_length=1, max_length=256)
    method: str = "GET"
    url: str = Field(min_length=1, max_length=4096)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="A JSON body (sets content-type).")
    body: str | None = Field(None, description="A raw text body.")
    timeout_s: float = Field(10.0, gt=0, le=300)
    follow_redirects: bool = True
    extract: list[Extraction] = Field(default_factory=list)
    assertions: list[Assertion] = Field(
        default_factory=list,
        alias="assert",
        description="Without a status assertion, a status of 400 or more fails the step.",
    )

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {value!r}")
        return upper

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give 'json' or 'body', not both")
        return self


class RetryPolicy(Strict):
    """Failed runs are tried again, with exponential backoff, before being reported."""

    attempts: int = Field(1, ge=0, le=10, description="Extra attempts after a failed run.")
    backoff_s: float = Field(1.0, ge=0, le=300)
    backoff_max_s: float = Field(30.0, ge=0, le=3600)

    def delay(self, attempt: int) -> float:
        """Pause before extra attempt ``attempt`` (1-based).

        >>> [RetryPolicy(backoff_s=1, backoff_max_s=3).delay(n) for n in (1, 2, 3)]
        [1.0, 2.0, 3.0]
        """
        return float(min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s))


class CheckDefinition(Strict):
    """One synthetic check: a named, scheduled, multi-step HTTP flow."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=128)
    name: str = Field(min_length=1, max_length=256)
    interval_s: float = Field(60.0, ge=1, le=86_400)
    jitter_s: float = Field(0.0, ge=0, le=3_600, description="Random spread added per run.")
    enabled: bool = True
    service: str | None = Field(None, description="Links results with RUM alerts.")
    environment: str = "production"
    variables: dict[Name, Variable] = Field(default_factory=dict)
    retries: RetryPolicy = RetryPolicy()
    steps: list[Step] = Field(min_length=1, max_length=64)
