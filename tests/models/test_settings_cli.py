"""Configuration loading and the command line's error contract: one line on stderr, non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from apiwatch.models.buckets import rum_series_key
from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.monitor import SeriesMonitor
from apiwatch.models.schemas import SCHEMAS
from apiwatch.models.simulation import Simulator
from apiwatch.settings import ConfigError, load_settings
from apiwatch.streams.cli import main
from apiwatch.streams.simulate import load_scenario
from tests.detection.helpers import bucket, noisy_bucket

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No APIWATCH_* variable of the developer's shell may leak into these tests."""
    for key in list(os.environ):
        if key.startswith("APIWATCH_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- settings ---------------------------------------------------------------------------------


def test_defaults_load() -> None:
    s = load_settings()
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.topics.rum and s.ingest.bucket_s > 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("kafka:\n  bootstrap_server: x:9092\n", "kafka.bootstrap_server"),
        ("kafak:\n  bootstrap_servers: x:9092\n", "kafak"),
        ("ingest:\n  bucket_s: 10\n  buckets: 3\n", "ingest.buckets"),
        ("detection:\n  latency:\n    quantil: 0.9\n", "detection.latency.quantil"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "c.yaml", text))
    assert str(exc.value) == f"invalid config: {key}: unknown key"


def test_env_beats_yaml_and_keeps_the_rest_of_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "c.yaml", "kafka:\n  bootstrap_servers: yaml:9092\n  client_id: mine\n")
    assert load_settings(path).kafka.bootstrap_servers == "yaml:9092"
    monkeypatch.setenv("APIWATCH_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    s = load_settings(path)
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.kafka.client_id == "mine"
    assert not s.embedded


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIWATCH_CONFIG", str(write(tmp_path, "c.yaml", "app:\n  app_id: x1\n")))
    assert load_settings().app.app_id == "x1"


def test_bad_env_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIWATCH_TOPICS__PARTITIONS", "0")
    with pytest.raises(ConfigError, match=r"^invalid config: topics\.partitions: "):
        load_settings()


def test_error_surge_windows_must_nest(tmp_path: Path) -> None:
    text = "detection:\n  error_surge:\n    window_buckets: 6\n    long_window_buckets: 4\n"
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "c.yaml", text))
    message = str(exc.value)
    assert message.startswith("invalid config: detection.error_surge: ") and "\n" not in message
    assert "long_window_buckets (4) must be 0 (off) or more than window_buckets (6)" in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "kafka:\n  client_id: a\n  bootstrap_servers: [x\n  b: c\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert str(exc.value) == f"config file {path} line 4 is not valid YAML"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_yaml_must_hold_sections(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_settings(write(tmp_path, "c.yaml", text))


def test_empty_yaml_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "c.yaml", "")) == load_settings()


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read config file .*nope\.yaml: No such file"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "kafka",
    [
        {"security_protocol": "SASL_SSL"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
        {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "p"},
    ],
)
def test_sasl_without_credentials_fails(kafka: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(overrides={"kafka": kafka})
    assert "kafka" in str(exc.value) and "needs sasl_mechanism" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_sasl_with_credentials_keeps_the_secret_out_of_reprs() -> None:
    s = load_settings(
        overrides={
            "kafka": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "u",
                "sasl_password": "hunter2",
            }
        }
    )
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIWATCH_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    s = load_settings(overrides={"kafka": {"bootstrap_servers": "override:9092"}})
    assert s.kafka.bootstrap_servers == "override:9092"


# -- the command line -------------------------------------------------------------------------


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """Run the console-script entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["apiwatch", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


BAD_SCENARIO_YAML = "duration_s: 60\nservices: [\n"
BAD_SCENARIO_FIELD = "duration_s: -5\n"


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["worker", "--nope"], {}, "No such option: --nope"),
        (["schema"], {}, "Missing argument"),
        (["no-such-command"], {}, "No such command"),
        (["schema", "nope"], {}, "unknown schema 'nope'; choose one of: rum, synthetic"),
        (["worker", "--config", "{tmp}/missing.yaml"], {}, "cannot read config file"),
        (
            ["worker", "--config", "{tmp}/c.yaml"],
            {"c.yaml": "kafka:\n  bootstrap_server: x\n"},
            "invalid config: kafka.bootstrap_server: unknown key",
        ),
        (
            ["simulate", "--scenario", "{tmp}/bad.yaml"],
            {"bad.yaml": BAD_SCENARIO_YAML},
            "bad.yaml line 3 is not valid YAML",
        ),
        (
            ["simulate", "--scenario", "{tmp}/bad.yaml"],
            {"bad.yaml": BAD_SCENARIO_FIELD},
            "bad.yaml: duration_s: Input should be greater than 0",
        ),
        (["simulate", "--scenario", "{tmp}/none.yaml"], {}, "cannot read scenario"),
        (["simulate", "--speed", "0"], {}, "--speed must be positive"),
        (["demo", "--duration", "5"], {}, "--duration 5: the demo needs at least 20 seconds"),
        (["worker", "--http-port", "70000"], {}, "--http-port 70000 is not a port number"),
        (["worker", "--role", "nope"], {}, "unknown role 'nope'"),
    ],
)
def test_user_errors_are_one_line_on_stderr(
    args: list[str],
    files: dict[str, str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    code, out, err = cli(capsys, monkeypatch, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code != 0
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("apiwatch: ")
    assert message in lines[0]
    assert "Traceback" not in err


def test_the_real_entry_point_fails_the_same_way(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
    proc = subprocess.run(
        [sys.executable, "-m", "apiwatch", "schema", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "apiwatch: unknown schema 'nope'; choose one of: rum, synthetic, alert, deadletter"
    ]


# -- schemas ---------------------------------------------------------------------------------


def schema_from_cli(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    code, out, err = cli(capsys, monkeypatch, "schema", name)
    assert code == 0 and err == ""
    schema = json.loads(out)
    assert isinstance(schema, dict)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.json")
    return schema


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_command_prints_a_valid_json_schema(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = schema_from_cli(name, capsys, monkeypatch)
    assert schema["type"] == "object" and schema["required"]


def test_simulated_traffic_validates_against_the_schemas(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rum = jsonschema.Draft202012Validator(schema_from_cli("rum", capsys, monkeypatch))
    syn = jsonschema.Draft202012Validator(schema_from_cli("synthetic", capsys, monkeypatch))
    sim = Simulator(load_scenario(None), start_ms=1_767_225_600_000)
    events, results = sim.generate(0, 120_000)
    assert events and results
    for ev in events[:200]:
        rum.validate(json.loads(json.dumps(ev)))
    for res in results:
        syn.validate(json.loads(json.dumps(res)))
    # The schema is not vacuous: what the model rejects, the schema rejects too.
    bad = dict(events[0], status=700)
    assert not rum.is_valid(bad)
    missing = {k: v for k, v in events[0].items() if k != "client_ip"}
    assert not rum.is_valid(missing)


def test_alerts_and_dead_letters_validate_against_their_schemas(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = jsonschema.Draft202012Validator(schema_from_cli("alert", capsys, monkeypatch))
    dead = jsonschema.Draft202012Validator(schema_from_cli("deadletter", capsys, monkeypatch))
    rng = np.random.default_rng(2)
    series = rum_series_key("production", "shop", "GET", "/items/{id}")
    m = SeriesMonitor(DetectionConfig(), series)
    emissions = []
    for i in range(120):
        emissions += m.observe(noisy_bucket(rng, i, 40) if i < 100 else bucket(i, 0))
    assert emissions
    for e in emissions:
        alert.validate(e.event("/apiwatch/test").model_dump(mode="json"))
    letter = DeadLetter.build(
        b"\xffnot json", reason=Reason.INVALID_JSON, detail="x", topic="t", partition=0, offset=1
    )
    dead.validate(letter.model_dump(mode="json"))
