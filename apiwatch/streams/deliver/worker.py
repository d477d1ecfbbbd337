"""The delivery worker: one consumer group over alerts, routed and retry topics.

Stages, in the order a record meets them::

    alerts ─► route ─► routed topic (key = group) ─► group ─► inhibit ─► silence
          ─► dedup ─► send ─┬─ sent
                            ├─ retry topics ─► retry ─► send …
                            └─ DLQ

One consumer (so one group join) feeds every stage; records are dispatched
by topic. Sends run as tasks in per-receiver lanes, so the loop never waits
on a receiver. The loop commits, per partition, the offsets below the oldest
record whose work is not yet durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from apiwatch.models.delivery.inhibit import Inhibitor
from apiwatch.models.delivery.routing import build_tree
from apiwatch.settings import Settings
from apiwatch.streams.deliver.alert_view import AlertView
from apiwatch.streams.deliver.api import start_api
from apiwatch.streams.deliver.group_stage import GroupStage
from apiwatch.streams.deliver.offsets import OffsetTracker
from apiwatch.streams.deliver.redacting_log import redacting
from apiwatch.streams.deliver.retry_stage import RetryStage
from apiwatch.streams.deliver.route_stage import RouteStage
from apiwatch.streams.deliver.sender import Sender
from apiwatch.streams.deliver.silences import SilenceStore
from apiwatch.streams.deliver.topics import delivery_topic_specs
from apiwatch.streams.kafka import ensure_topics, make_consumer, make_producer, topic_specs
from apiwatch.streams.notify.registry import build_notifier

log = logging.getLogger(__name__)

#: How long in-flight sends may finish on shutdown before they are abandoned
#: (uncommitted, so replayed by the next owner).
DRAIN_S = 5.0


class _Flow:
    """Pause/resume by ``(topic, partition)`` on an aiokafka consumer."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def pause(self, tp: tuple[str, int]) -> None:
        self._consumer.pause(TopicPartition(*tp))

    def resume(self, tp: tuple[str, int]) -> None:
        self._consumer.resume(TopicPartition(*tp))


class DeliveryWorker:
    """Runs the delivery stage until ``stop`` is set. ``api_url`` is set once serving."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.delivery
        self.tree = build_tree(self.cfg.route)
        self.tracker = OffsetTracker()
        self.api_url: str | None = None
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        kafka = self.settings.kafka
        await ensure_topics(
            kafka, [*topic_specs(self.settings), *delivery_topic_specs(self.settings)]
        )
        async with contextlib.AsyncExitStack() as stack:
            producer = make_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            client = httpx.AsyncClient(follow_redirects=False)
            stack.push_async_callback(client.aclose)

            silences = SilenceStore(self.settings, producer)
            view = AlertView(self.settings)
            stack.push_async_callback(silences.stop)
            stack.push_async_callback(view.stop)
            # Silences and firing alerts first: a restarted worker must not notify
            # what a silence it has not read yet would mute.
            await asyncio.gather(silences.restore(), view.restore())
            followers = [asyncio.create_task(f) for f in (silences.follow(), view.follow())]
            for task in followers:
                stack.push_async_callback(_cancel, task)

            if self.cfg.api.enabled:
                runner, self.api_url = await start_api(
                    silences, self.cfg.api.host, self.cfg.api.port
                )
                stack.push_async_callback(runner.cleanup)
                log.info("silences API on %s", self.api_url)

            notifiers = {
                name: build_notifier(name, rc, client) for name, rc in self.cfg.receivers.items()
            }
            stack.enter_context(redacting(s for n in notifiers.values() for s in n.secrets()))
            sender = Sender(self.settings, producer, notifiers)
            consumer = make_consumer(kafka, group_id=self.cfg.group_id)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            # Runs before consumer.stop (LIFO): settle what can be settled, commit it.
            stack.push_async_callback(self._shutdown, sender, consumer)

            inhibitor = Inhibitor(self.cfg.inhibit_rules, view.firing)
            route = RouteStage(self.settings, producer, self.tree, self.tracker)
            group = GroupStage(
                self.settings, self.tree, sender, [inhibitor, silences.silences], self.tracker
            )
            retry = RetryStage(sender, self.tracker, _Flow(consumer))
            retry_topics = set(self.cfg.retry_topics())

            def revoked(tps: set[tuple[str, int]]) -> None:
                group.revoke(tps)
                retry.revoke(tps)
                self.tracker.forget(tps)

            consumer.subscribe(
                [self.settings.topics.alerts, self.cfg.topics.routed, *sorted(retry_topics)],
                listener=_Rebalance(self, consumer, revoked),
            )
            self.started.set()
            tick_ms = int(self.cfg.tick_s * 1000)
            while not stop.is_set():
                if sender.failure is not None:
                    raise RuntimeError("delivery could not write to Kafka") from sender.failure
                for task in followers:
                    if task.done():
                        raise RuntimeError(
                            "silences or alerts reader stopped"
                        ) from task.exception()
                await sender.wait_below(self.cfg.max_in_flight)
                batches = await consumer.getmany(timeout_ms=tick_ms)
                for tp, records in batches.items():
                    if tp.topic == self.settings.topics.alerts:
                        await route.handle(records)
                    elif tp.topic == self.cfg.topics.routed:
                        group.handle(records)
                    elif tp.topic in retry_topics:
                        retry.handle(records)
                group.tick()
                retry.tick()
                await self.commit(consumer)

    async def commit(self, consumer: Any) -> None:
        """Commit what is durable, for partitions this worker still owns."""
        owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        offsets = {tp: o for tp, o in self.tracker.to_commit().items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit({TopicPartition(*tp): o for tp, o in offsets.items()})
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # A rebalance is under way; the next owner replays from the last commit.
            log.warning("offset commit failed (%s); will retry", type(exc).__name__)
            return
        self.tracker.committed(offsets)

    async def _shutdown(self, sender: Sender, consumer: Any) -> None:
        await sender.drain(DRAIN_S)
        with contextlib.suppress(Exception):
            await self.commit(consumer)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: DeliveryWorker, consumer: Any, revoked: Any) -> None:
        self._worker = worker
        self._consumer = consumer
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._worker.commit(self._consumer)
        self._revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_delivery(settings: Settings, stop: asyncio.Event) -> None:
    """Run the delivery stage until ``stop`` is set; clean up on the way out.

    ``apiwatch deliver`` and ``apiwatch worker`` both call this.
    """
    await DeliveryWorker(settings).run(stop)
