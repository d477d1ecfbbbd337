"""Kafka clients built from :class:`~apiwatch.settings.KafkaConfig`, and topic set-up.

Every aiokafka client in apiwatch is made here, so TLS/SASL and the timeouts
that suit the embedded broker are set in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from apiwatch.settings import KafkaConfig, Settings

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """No Kafka broker answered at the configured bootstrap servers."""


def ssl_context(cfg: KafkaConfig) -> ssl.SSLContext | None:
    if cfg.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile else None)
    if cfg.ssl_certfile:
        ctx.load_cert_chain(
            str(cfg.ssl_certfile), str(cfg.ssl_keyfile) if cfg.ssl_keyfile else None
        )
    return ctx


def common_kwargs(cfg: KafkaConfig, bootstrap: str | None = None) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and the admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap or cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": int(cfg.request_timeout_s * 1000),
    }
    ctx = ssl_context(cfg)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if cfg.sasl_mechanism:
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = (
            cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
        )
    return kwargs


def make_producer(cfg: KafkaConfig, bootstrap: str | None = None, **extra: Any) -> AIOKafkaProducer:
    kwargs = common_kwargs(cfg, bootstrap)
    kwargs.setdefault("linger_ms", 5)
    kwargs.setdefault("max_batch_size", 1 << 20)
    kwargs.setdefault("acks", "all")
    kwargs.update(extra)
    return AIOKafkaProducer(**kwargs)


def make_consumer(
    cfg: KafkaConfig,
    *topics: str,
    group_id: str | None,
    bootstrap: str | None = None,
    **extra: Any,
) -> AIOKafkaConsumer:
    kwargs = common_kwargs(cfg, bootstrap)
    kwargs.update(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(cfg.session_timeout_s * 1000),
        heartbeat_interval_ms=max(100, int(cfg.session_timeout_s * 1000 / 4)),
        fetch_max_wait_ms=cfg.fetch_max_wait_ms,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=32 << 20,
    )
    kwargs.update(extra)
    return AIOKafkaConsumer(*topics, **kwargs)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic apiwatch writes or reads, created with explicit configs.

    Configs are explicit because the embedded broker reports only the configs a
    topic was created with (DESIGN.md).
    """
    t = settings.topics
    plain = {"retention.ms": str(t.retention_ms), "cleanup.policy": "delete"}
    return [
        NewTopic(name, t.partitions, t.replication_factor, topic_configs=dict(plain))
        for name in (t.rum, t.synthetic, t.otlp, t.deadletter, t.buckets, t.alerts)
    ] + [
        # One partition: incident linking needs every RUM and synthetic alert in one place.
        NewTopic(t.alerts_pending, 1, t.replication_factor, topic_configs=dict(plain))
    ]


async def ensure_topics(
    cfg: KafkaConfig,
    specs: Iterable[NewTopic],
    bootstrap: str | None = None,
    attempts: int = 30,
) -> list[str]:
    """Create missing topics; return the names created. Retries while the broker starts."""
    specs = list(specs)
    delay = 0.2
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(**common_kwargs(cfg, bootstrap))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if missing:
                # Another worker may create them between our list and create.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            return [s.name for s in missing]
        except (KafkaConnectionError, OSError) as exc:
            if attempt == attempts:
                raise KafkaUnavailable(
                    f"no Kafka broker answered at {bootstrap or cfg.bootstrap_servers} "
                    f"after {attempts} attempts: {exc}"
                ) from exc
            log.warning(
                "Kafka not reachable at %s (%s); retrying in %.1f s (attempt %d of %d)",
                bootstrap or cfg.bootstrap_servers,
                exc,
                delay,
                attempt,
                attempts,
            )
        except KafkaError as exc:
            if attempt == attempts:
                raise KafkaUnavailable(f"could not create topics: {exc}") from exc
            log.warning("topic creation failed (%s); retrying in %.1f s", exc, delay)
        finally:
            await admin.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
    return []


async def assign_from_start(consumer: AIOKafkaConsumer, topic: str, within_s: float = 20.0) -> None:
    """Assign every partition of ``topic`` to a group-less consumer, from the beginning.

    Waits (refreshing metadata) until the topic exists, up to ``within_s``.
    """
    from aiokafka import TopicPartition

    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaUnavailable(f"topic {topic} did not appear within {within_s:.0f} s")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
