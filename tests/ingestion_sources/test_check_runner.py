"""The check runner against a real HTTP server on loopback: flows, assertions, timeouts, retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from apiwatch.models.checks.loading import parse_check
from apiwatch.models.events import SyntheticStatus
from apiwatch.streams.checks.runner import CheckRunner, Run, summary

from .bank import PASSWORD, TOKEN, Bank, serve_bank

FLOW = """
id: transfer-flow
name: Log in, read the balance, make a transfer
service: bank
retries: {attempts: 0}
variables:
  base: {env: BANK_URL}
  password: {env: BANK_PASSWORD, secret: true}
  api_key: {env: BANK_API_KEY, secret: true}
steps:
  - name: log in
    method: POST
    url: "{{ base }}/login"
    json: {user: alice, password: "{{ password }}"}
    extract:
      - {name: token, jsonpath: $.token, secret: true}
      - {name: account, jsonpath: $.account}
      - {name: sid, header: set-cookie, regex: "sid=([^;]+)"}
    assert:
      - status: 200
  - name: read balance
    url: "{{ base }}/accounts/{{ account }}/balance"
    headers: {authorization: "Bearer {{ token }}", x-session: "{{ sid }}"}
    assert:
      - status: [200, 203]
      - response_time_ms: {less_than: 5000}
      - header: content-type
        contains: json
      - jsonpath: $.balance
        greater_than: 0
      - jsonpath: $.currency
        equals: EUR
      - json_schema:
          type: object
          required: [balance, currency]
          properties: {currency: {type: string}}
  - name: transfer
    method: POST
    url: "{{ base }}/transfer"
    headers: {authorization: "Bearer {{ token }}"}
    json: {amount: 10}
    assert:
      - status: 201
  - name: whoami
    url: "{{ base }}/whoami?key={{ api_key }}"
    assert:
      - header: x-echo-key
        equals: nope
"""
API_KEY = "ak-live-7f7f7f7f"


@pytest.fixture
def bank() -> Iterator[Bank]:
    with serve_bank() as b:
        yield b


def runner(bank: Bank, sleep: Any = None, **env: str) -> CheckRunner:
    base = {"BANK_URL": bank.url, "BANK_PASSWORD": PASSWORD, "BANK_API_KEY": API_KEY}
    return CheckRunner("test-loc", {**base, **env}, sleep=sleep or _no_sleep)


async def _no_sleep(_: float) -> None:
    return None


def check(text: str = FLOW, **changes: Any) -> Any:
    c = parse_check(text, "flow.yaml")
    return c.model_copy(update=changes)


async def test_multi_step_flow_with_extracted_variables_passes_and_keeps_secrets_out(
    bank: Bank,
) -> None:
    flow = check()
    flow = flow.model_copy(update={"steps": flow.steps[:3]})
    run = await runner(bank).run(flow)

    result = run.result
    assert result.status is SyntheticStatus.PASSED, summary(result)
    assert (result.check_id, result.location, result.service) == (
        "transfer-flow",
        "test-loc",
        "bank",
    )
    assert [s.name for s in result.steps] == ["log in", "read balance", "transfer"]
    assert [s.status_code for s in result.steps] == [200, 200, 201]
    assert result.steps[1].url == f"{bank.url}/accounts/42/balance"
    assert result.steps[1].route == "/accounts/{id}/balance"
    assert all(a.passed for s in result.steps for a in s.assertions)
    first = result.steps[0].timings
    assert first is not None and first.connect is not None and first.ttfb is not None
    assert first.transfer is not None and first.tls is None  # plain HTTP: no TLS phase
    assert run.attempts == 1
    message = run.to_json()
    assert PASSWORD.encode() not in message and TOKEN.encode() not in message
    assert orjson.loads(message)["attempts"] == 1


async def test_secrets_in_urls_and_echoed_values_are_redacted(bank: Bank) -> None:
    run = await runner(bank).run(check())
    whoami = run.result.steps[-1]
    assert whoami.url == f"{bank.url}/whoami?key=[redacted]"
    (failed,) = [a for a in whoami.assertions if not a.passed]
    assert failed.actual == "[redacted]"
    assert failed.message == "header 'x-echo-key': expected equals 'nope', got '[redacted]'"
    assert API_KEY.encode() not in run.to_json()


async def test_each_assertion_kind_fails_with_a_readable_message(bank: Bank) -> None:
    bank.behaviour.mode = "wrong"
    text = FLOW.replace("less_than: 5000", "less_than: 0.001").replace(
        "contains: json", "contains: xml"
    )
    text += """
      - {header: x-api-version, matches: "^2$"}
      - {header: x-missing, exists: true}
      - {jsonpath: $.balance, less_than: -10}
      - {jsonpath: $.nothing, exists: true}
      - {jsonpath: $.currency, contains: EU}
      - {jsonpath: $.balance, matches: "^1"}
"""
    # The extra assertions were appended to the last step; move them to "read balance".
    c = check(text)
    extra = c.steps[3].assertions[1:]
    steps = [
        c.steps[0],
        c.steps[1].model_copy(update={"assertions": [*c.steps[1].assertions, *extra]}),
    ]
    result = (await runner(bank).run(c.model_copy(update={"steps": steps}))).result

    assert result.status is SyntheticStatus.FAILED
    assert len(result.steps) == 2  # the flow stops at the failing step
    messages = [a.message or "" for a in result.steps[1].assertions if not a.passed]
    assert messages[0].startswith("response time ") and messages[0].endswith(
        "expected below 0.001 ms"
    )
    assert messages[1:] == [
        "header 'content-type': expected contains 'xml', got 'application/json'",
        "$.balance: expected greater than 0, got -5",
        "$.currency: expected equals 'EUR', got 7",
        "json_schema: $.currency: 7 is not of type 'string'",
        "header 'x-api-version': expected matches '^2$', got '1'",
        "header 'x-missing': expected to exist, but it is missing",
        "$.balance: expected less than -10, got -5",
        "$.nothing: expected to exist, but it is missing",
        "$.currency: expected contains 'EU', got 7 (not a string, list or object)",
        "$.balance: expected matches '^1', got -5",
    ]
    assert "step 'read balance': response time" in summary(result)


async def test_status_assertion_and_the_implicit_one(bank: Bank) -> None:
    bank.behaviour.mode = "fail"
    result = (await runner(bank).run(check())).result
    (status,) = result.steps[0].assertions
    assert (status.passed, status.message) == (False, "status 503, expected 200")

    implicit = check().steps[0].model_copy(update={"assertions": []})
    result = (await runner(bank).run(check(steps=[implicit]))).result
    assert result.steps[0].assertions[0].message == "status 503, expected below 400"


async def test_a_slow_response_is_a_timeout_with_no_status(bank: Bank) -> None:
    bank.behaviour.mode, bank.behaviour.delay_s = "slow", 2.0
    first = check().steps[0].model_copy(update={"timeout_s": 0.2})
    result = (await runner(bank).run(check(steps=[first]))).result
    assert result.status is SyntheticStatus.TIMEOUT
    (step,) = result.steps
    assert step.status_code is None
    assert step.error is not None and step.error.startswith("timed out after 0.2 s")
    assert step.duration_ms < 1500


async def test_retries_with_backoff_before_declaring_a_run_failed(bank: Bank) -> None:
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    retrying = check(retries=check().retries.model_copy(update={"attempts": 3, "backoff_s": 0.5}))
    retrying = retrying.model_copy(update={"steps": retrying.steps[:3]})
    bank.behaviour.fail_next = 2
    r = runner(bank, sleep)
    run = await r.run(retrying)
    assert (run.result.status, run.attempts, delays) == (SyntheticStatus.PASSED, 3, [0.5, 1.0])

    bank.behaviour.mode = "fail"
    delays.clear()
    run = await r.run(retrying)
    assert (run.result.status, run.attempts, delays) == (SyntheticStatus.FAILED, 4, [0.5, 1.0, 2.0])


async def test_connection_refused_and_missing_environment_are_errors(bank: Bank) -> None:
    run = await runner(bank, BANK_URL="http://127.0.0.1:9").run(check())
    assert run.result.status is SyntheticStatus.ERROR
    assert run.result.steps[0].status_code is None and "ConnectError" in (
        run.result.steps[0].error or ""
    )

    r = CheckRunner("loc", {"BANK_URL": bank.url}, sleep=_no_sleep)
    result = (await r.run(check())).result
    assert result.status is SyntheticStatus.ERROR
    assert (
        result.steps[0].error
        == "variable 'password': environment variable BANK_PASSWORD is not set"
    )


def test_run_message_is_a_valid_synthetic_result() -> None:
    from apiwatch.models.events import SyntheticResult

    step = {"name": "s", "method": "GET", "url": "http://x/", "status_code": 200, "duration_ms": 1}
    result = SyntheticResult.model_validate(
        {
            "check_id": "c",
            "check_name": "C",
            "run_id": "r",
            "location": "l",
            "timestamp": 1767225600000,
            "status": "passed",
            "duration_ms": 1,
            "steps": [step],
        }
    )
    again = SyntheticResult.model_validate_json(Run(result, 2).to_json())
    assert again == result
