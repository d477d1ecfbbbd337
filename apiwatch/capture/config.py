"""How an application's RUM capture is set up: its service name, Kafka, and the trusted proxy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from apiwatch.settings import KafkaConfig, Settings


class CaptureConfig(BaseModel):
    """Configuration of the RUM middlewares and their background publisher.

    ``client_ip_header`` names the header a trusted reverse proxy sets (for
    example ``x-forwarded-for``); leave it empty when clients connect directly,
    since anyone can send that header. ``trusted_hops`` is how many proxies
    append to it: the client is that many entries from the right.
    ``queue_size`` bounds the events waiting for Kafka; beyond it new events
    are dropped and counted, so the application never waits on Kafka.

    >>> CaptureConfig(service="shop", kafka={"bootstrap_servers": "kafka:9092"}).topic
    'apiwatch.rum.events'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=256)
    environment: str = Field("production", min_length=1, max_length=256)
    kafka: KafkaConfig = KafkaConfig()
    topic: str = "apiwatch.rum.events"
    queue_size: int = Field(10_000, ge=1)
    client_ip_header: str | None = None
    trusted_hops: int = Field(1, ge=1, le=16)
    exclude_paths: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings, service: str, **values: object) -> CaptureConfig:
        """Kafka connection and RUM topic from apiwatch's own settings."""
        return cls.model_validate(
            {"service": service, "kafka": settings.kafka, "topic": settings.topics.rum, **values}
        )
