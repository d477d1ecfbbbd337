"""Run a check: its steps in order with httpx, variables carried along, retries with backoff.

Each attempt uses a fresh client, so every run pays (and measures) its own
connection and TLS set-up, and no cookie leaks from one run into the next;
within a run the steps share the client, as a user's session would.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apiwatch.models.checks.assertions import evaluate_all
from apiwatch.models.checks.definition import CheckDefinition, Step
from apiwatch.models.checks.extraction import ExtractionFailed, extract_value
from apiwatch.models.checks.redaction import Redactor
from apiwatch.models.checks.response import NotJson
from apiwatch.models.checks.templating import UndefinedVariable, render, render_json
from apiwatch.models.checks.variables import MissingVariable, resolve
from apiwatch.models.events import AssertionResult, SyntheticResult, SyntheticStatus, SyntheticStep
from apiwatch.streams.checks.http import Outcome, Request, execute

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Run:
    """The reported result of one scheduled run, and how many attempts it took."""

    result: SyntheticResult
    attempts: int

    def to_json(self) -> bytes:
        """The synthetic-result message: the contract's fields plus ``attempts``."""
        return orjson.dumps({**self.result.model_dump(mode="json"), "attempts": self.attempts})


class CheckRunner:
    """Runs checks from one location; ``env`` supplies the checks' variables."""

    def __init__(
        self,
        location: str,
        env: Mapping[str, str],
        user_agent: str = "apiwatch-synthetics",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.location = location
        self.env = env
        self.user_agent = user_agent
        self.sleep = sleep

    async def run(self, check: CheckDefinition) -> Run:
        """Attempt the check, retrying a failed attempt with backoff; report the last."""
        result = await self.attempt(check)
        attempts = 1
        while result.failed and attempts <= check.retries.attempts:
            await self.sleep(check.retries.delay(attempts))
            result = await self.attempt(check)
            attempts += 1
        level = logging.INFO if not result.failed else logging.WARNING
        log.log(level, "%s (attempt %d)", summary(result), attempts)
        return Run(result=result, attempts=attempts)

    async def attempt(self, check: CheckDefinition) -> SyntheticResult:
        started_at = datetime.now(tz=UTC)
        started = time.perf_counter()
        steps, status = await self._steps(check)
        return SyntheticResult(
            check_id=check.id,
            check_name=check.name,
            run_id=uuid.uuid4().hex,
            location=self.location,
            timestamp=started_at,
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            steps=steps,
            service=check.service,
            environment=check.environment,
        )

    async def _steps(self, check: CheckDefinition) -> tuple[list[SyntheticStep], SyntheticStatus]:
        try:
            variables, redactor = resolve(check.variables, self.env)
        except MissingVariable as exc:
            first = check.steps[0]
            return [_error_step(first, first.url, str(exc))], SyntheticStatus.ERROR
        steps: list[SyntheticStep] = []
        headers = {"user-agent": self.user_agent}
        async with httpx.AsyncClient(headers=headers) as client:
            for step in check.steps:
                try:
                    request = build_request(step, variables)
                except UndefinedVariable as exc:
                    steps.append(_error_step(step, step.url, str(exc), redactor))
                    return steps, SyntheticStatus.ERROR
                outcome = await execute(client, request)
                done, status = _record(step, request, outcome, variables, redactor)
                steps.append(done)
                if status is not SyntheticStatus.PASSED:
                    return steps, status
        return steps, SyntheticStatus.PASSED


def build_request(step: Step, variables: Mapping[str, str]) -> Request:
    return Request(
        method=step.method,
        url=render(step.url, variables),
        headers={k: render(v, variables) for k, v in step.headers.items()},
        json_body=render_json(step.json_body, variables),
        body=render(step.body, variables) if step.body is not None else None,
        timeout_s=step.timeout_s,
        follow_redirects=step.follow_redirects,
    )


def _record(
    step: Step,
    request: Request,
    outcome: Outcome,
    variables: dict[str, str],
    redactor: Redactor,
) -> tuple[SyntheticStep, SyntheticStatus]:
    """The step as reported, and what it means for the run; extracts variables on success."""
    if outcome.response is None:
        status = SyntheticStatus.TIMEOUT if outcome.timed_out else SyntheticStatus.ERROR
        return _make_step(step, request.url, outcome, [], outcome.error, redactor), status
    assertions = evaluate_all(step.assertions, outcome.response)
    error = None
    try:
        for spec in step.extract:
            value = extract_value(spec, outcome.response)
            variables[spec.name] = value
            if spec.secret:
                redactor.add(value)
    except (ExtractionFailed, NotJson) as exc:
        error = str(exc)
    done = _make_step(step, request.url, outcome, assertions, error, redactor)
    return done, SyntheticStatus.PASSED if done.passed else SyntheticStatus.FAILED


def _make_step(
    step: Step,
    url: str,
    outcome: Outcome,
    assertions: list[AssertionResult],
    error: str | None,
    redactor: Redactor,
) -> SyntheticStep:
    data: dict[str, Any] = {
        "name": step.name,
        "method": step.method,
        "url": url,
        "status_code": outcome.response.status_code if outcome.response else None,
        "duration_ms": outcome.duration_ms,
        "timings": outcome.timings.model_dump() if outcome.timings else None,
        "assertions": [a.model_dump() for a in assertions],
        "error": error,
    }
    # Secrets may sit in the URL, an echoed header or body value, or an error text.
    return SyntheticStep.model_validate(redactor.value(data))


def _error_step(
    step: Step, url: str, error: str, redactor: Redactor | None = None
) -> SyntheticStep:
    return _make_step(step, url, Outcome(duration_ms=0.0), [], error, redactor or Redactor())


def summary(result: SyntheticResult) -> str:
    """One line for a person: verdict, check, location, time, and the first failure.

    >>> from apiwatch.models.events import SyntheticStep
    >>> step = SyntheticStep(name="ping", method="GET", url="http://x/", status_code=None,
    ...                      duration_ms=3.0, error="timed out after 1 s")
    >>> r = SyntheticResult(check_id="c", check_name="C", run_id="r", location="eu",
    ...     timestamp=1767225600000, status="timeout", duration_ms=1000.4, steps=[step])
    >>> summary(r)
    "TIMEOUT c from eu in 1000 ms: step 'ping': timed out after 1 s"
    """
    head = f"{result.status.value.upper()} {result.check_id} from {result.location}"
    head += f" in {result.duration_ms:.0f} ms"
    for step in result.steps:
        if step.passed:
            continue
        problems = [a.message or a.kind for a in step.assertions if not a.passed]
        if step.error:
            problems.insert(0, step.error)
        return f"{head}: step {step.name!r}: {'; '.join(problems)}"
    return head
