"""Configuration: one frozen, strict model loaded once at start-up.

Sources, lowest priority first:

1. the packaged defaults, ``config/apiwatch.yaml``;
2. an optional user YAML file (``--config`` or ``APIWATCH_CONFIG``), deep-merged;
3. environment variables ``APIWATCH_<SECTION>__<KEY>`` (for example
   ``APIWATCH_KAFKA__BOOTSTRAP_SERVERS=broker:9092``).

Unknown keys are errors, so a typo never silently falls back to a default.
:func:`load_settings` raises :class:`ConfigError` whose message is one line
naming the offending key.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.checks.config import ChecksConfig
from apiwatch.models.delivery.config import DeliveryConfig
from apiwatch.models.detection_config import DetectionConfig
from apiwatch.models.otlp_config import OtlpConfig

_REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"
_PACKAGED_CONFIG = Path(__file__).resolve().parent / "_defaults"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(Strict):
    """How to reach Kafka. Empty ``bootstrap_servers`` means: start the embedded broker."""

    bootstrap_servers: str = ""
    client_id: str = "apiwatch"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    session_timeout_s: float = Field(10.0, gt=0)
    request_timeout_s: float = Field(40.0, gt=0)
    fetch_max_wait_ms: int = Field(50, ge=0, le=10_000)

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                "security_protocol SASL_* needs sasl_mechanism, sasl_username and sasl_password"
            )
        return self


class TopicsConfig(Strict):
    """Topic names and partition counts; topics are created with these on start."""

    rum: str = "apiwatch.rum.events"
    synthetic: str = "apiwatch.synthetic.results"
    otlp: str = "otlp_spans"
    deadletter: str = "apiwatch.deadletter"
    buckets: str = "apiwatch.buckets"
    alerts: str = "apiwatch.alerts"
    alerts_pending: str = Field(
        "", description="Alerts on their way through incident linking; empty: <alerts>.pending."
    )
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=60_000)

    @model_validator(mode="after")
    def _derive_pending(self) -> TopicsConfig:
        if not self.alerts_pending:
            object.__setattr__(self, "alerts_pending", f"{self.alerts}.pending")
        return self


class IngestConfig(Strict):
    """The batched raw-event path (aiokafka + numpy)."""

    group_id: str = "apiwatch-ingest"
    max_batch: int = Field(20_000, ge=1)
    max_message_bytes: int = Field(65_536, ge=256)
    bucket_s: float = Field(10.0, gt=0, le=3600)
    allowed_lateness_s: float = Field(10.0, ge=0, le=3600)
    max_future_skew_s: float = Field(300.0, ge=0)
    idle_flush_s: float = Field(
        2.0, gt=0, description="Wall-clock seconds of silence after which open buckets close."
    )
    sample_ids_per_bucket: int = Field(5, ge=0, le=100)


class AppConfig(Strict):
    """The worker process: Faust app id, the web endpoint for /metrics and /health."""

    app_id: str = "apiwatch"
    source: str = "/apiwatch"
    http_host: str = "127.0.0.1"
    http_port: int = Field(8099, ge=0, le=65535)
    state_dir: Path = Path(".apiwatch-state")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """All of apiwatch's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="APIWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    ingest: IngestConfig = IngestConfig()
    detection: DetectionConfig = DetectionConfig()
    app: AppConfig = AppConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    checks: ChecksConfig = ChecksConfig()
    otlp: OtlpConfig = OtlpConfig()
    access: AccessConfig = AccessConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() layers files, environment and overrides itself, in that order;
        # the model only validates what it is given.
        return (init_settings,)

    @cached_property
    def embedded(self) -> bool:
        return not self.kafka.bootstrap_servers


def config_dir() -> Path:
    """The folder of packaged defaults (``config/`` in a checkout)."""
    return _PACKAGED_CONFIG if _PACKAGED_CONFIG.exists() else _REPO_CONFIG


def default_config_path() -> Path:
    return config_dir() / "apiwatch.yaml"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line: the first failing key, its problem, and how many more there are."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{prefix}{key}: {msg}{more}"


def load_settings(
    path: Path | str | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Load defaults, then the user's file, then the environment, then ``overrides``."""
    data = _read_yaml(default_config_path())
    user = path or os.environ.get("APIWATCH_CONFIG")
    if user:
        data = _deep_merge(data, _read_yaml(Path(user)))
    try:
        env = EnvSettingsSource(Settings)()
        data = _deep_merge(data, env)
        if overrides:
            data = _deep_merge(data, overrides)
        # Every layer is merged above; validate once, without reading the environment again.
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "invalid config: ")) from None
    except SettingsError as exc:  # e.g. an APIWATCH_ variable holding malformed JSON
        raise ConfigError(f"invalid config: {exc}") from None
