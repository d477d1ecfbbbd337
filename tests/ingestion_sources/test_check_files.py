"""Check files: errors name the file, the line and the field; folders; the published schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.models.checks.definition import CheckDefinition
from apiwatch.models.checks.loading import CheckFileError, parse_check
from apiwatch.streams.checks.files import load_checks

GOOD = """\
name: Ping
interval_s: 30
steps:
  - name: ping
    url: http://127.0.0.1:8000/health
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", "x.yaml:2: "),
        ("- just a list\n", "x.yaml:1: a check file must hold a mapping"),
        (
            GOOD.replace("interval_s: 30", "interval_s: fast"),
            "x.yaml:2: interval_s: Input should be",
        ),
        (GOOD + "colour: blue\n", "x.yaml:6: colour: unknown key"),
        (
            GOOD.replace("    url:", "    method: FETCH\n    url:"),
            "x.yaml:5: steps[0].method: unknown HTTP method 'FETCH'",
        ),
        (
            GOOD + "    assert:\n      - {jsonpath: '$.[', equals: 1}\n",
            "x.yaml:7: steps[0].assert[0].jsonpath: invalid JSONPath '$.['",
        ),
        (
            GOOD + "    assert:\n      - {body_contains: x}\n",
            "x.yaml:7: steps[0].assert[0]: an assertion needs one of: status, response_time_ms",
        ),
        (
            GOOD
            + "    assert:\n      - status: 200\n      - {header: a, equals: b, exists: true}\n",
            "x.yaml:8: steps[0].assert[1]: give exactly one of: equals",
        ),
        (
            GOOD + "    assert:\n      - json_schema: {type: 12}\n",
            "x.yaml:7: steps[0].assert[0].json_schema: not a valid JSON Schema",
        ),
        (
            GOOD + "    extract:\n      - {name: t, jsonpath: $.t, header: x}\n",
            "x.yaml:7: steps[0].extract[0]: 'jsonpath' cannot be combined",
        ),
        (GOOD.replace("health", "{{ who }}"), "x.yaml:5: steps[0].url: undefined variable 'who'"),
        (
            GOOD.replace("steps:", "variables:\n  k: {env: K, value: v}\nsteps:"),
            "x.yaml:4: variables.k: give exactly one of 'env' or 'value'",
        ),
        ("name: x\n", "x.yaml:1: steps: Field required"),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(CheckFileError) as info:
        parse_check(text, "x.yaml")
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


def test_variables_from_earlier_steps_are_known_later() -> None:
    text = GOOD + (
        "    extract: [{name: token, jsonpath: $.token}]\n"
        "  - name: use\n    url: http://h/x\n    headers: {authorization: 'Bearer {{ token }}'}\n"
    )
    check = parse_check(text, "checks/use.yaml")
    assert check.id == "use" and len(check.steps) == 2


def test_a_folder_loads_recursively_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "b.yml").write_text("id: b\n" + GOOD)
    (tmp_path / "notes.txt").write_text("not a check")
    assert [c.id for c in load_checks(tmp_path)] == ["a", "b"]

    (tmp_path / "team" / "c.yaml").write_text("id: a\n" + GOOD)
    with pytest.raises(
        CheckFileError, match=r"c\.yaml:1: id: duplicate check id 'a' \(also in .*a\.yaml\)"
    ):
        load_checks(tmp_path)
    with pytest.raises(CheckFileError, match="no such folder"):
        load_checks(tmp_path / "missing")


def test_the_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "checks"
    assert len(load_checks(examples)) >= 1


def test_schema_uses_the_file_keys() -> None:
    schema = CheckDefinition.model_json_schema(by_alias=True)
    step = schema["$defs"]["Step"]["properties"]
    assert "assert" in step and "json" in step
    assert set(schema["required"]) == {"id", "name", "steps"}
