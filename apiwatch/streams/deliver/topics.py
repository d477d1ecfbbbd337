"""The delivery stage's topics, created with explicit configs (the embedded broker
reports only the configs a topic was created with)."""

from __future__ import annotations

from aiokafka.admin import NewTopic

from apiwatch.settings import Settings


def delivery_topic_specs(settings: Settings) -> list[NewTopic]:
    """Routed, retry tiers, DLQ and log (delete policy); silences (compacted)."""
    cfg, t = settings.delivery, settings.topics
    partitions = cfg.topics.partitions or t.partitions
    plain = {"retention.ms": str(t.retention_ms), "cleanup.policy": "delete"}
    names = [cfg.topics.routed, *cfg.retry_topics(), cfg.topics.dlq, cfg.topics.log]
    specs = [
        NewTopic(n, partitions, t.replication_factor, topic_configs=dict(plain)) for n in names
    ]
    # Silences are few: one partition keeps them in one order; compaction keeps the
    # latest version of each forever, so none is lost however old.
    specs.append(
        NewTopic(
            cfg.topics.silences,
            1,
            t.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
    )
    return specs
