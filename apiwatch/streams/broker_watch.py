"""Watch the broker: say when it goes away, and notice when it comes back without its topics.

The embedded broker (Tansu, ``memory://``) keeps everything in memory, so a restart
loses every topic, every committed offset and every changelog. Kafka clients just
reconnect, and Tansu creates a topic on first mention with its own defaults, so
without a check the worker would carry on against a hollow broker: the ingest
consumer stuck on offsets that no longer exist, topics without their configs or
with the wrong partition count, and nothing in the log to say what was lost.

:class:`BrokerWatch` polls the broker (a metadata request) every ``interval_s``:

- broker unreachable: one WARNING (and one every ``REMIND_S`` while it lasts), the
  ``broker`` entry of /health turns ``unreachable`` (so /health answers 503) and
  ``apiwatch_broker_up`` is 0; the stages keep retrying on their own;
- broker back: it reads the worker's *epoch*, a random id written as the first
  record of a one-partition marker topic when the topics were created. A marker
  topic that is gone, or holds another epoch, means the broker lost its state
  (another worker may have recreated the topics first). Then the watch recreates
  every topic the worker needs (with their configs and partition counts, replacing
  any the clients' reconnects made Tansu create with its defaults), logs one WARNING
  per topic group saying what was lost, counts it in ``apiwatch_broker_state_lost``
  and ``apiwatch_topics_recreated``, and calls ``on_lost`` so the stages restart
  against the new, empty topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from apiwatch.settings import Settings
from apiwatch.streams.kafka import common_kwargs, make_consumer, make_producer
from apiwatch.streams.metrics import Health, Metrics

log = logging.getLogger(__name__)

#: While the broker stays away, a reminder this often.
REMIND_S = 30.0
#: Without an observed outage, the epoch is still read this often (a restart between polls).
EPOCH_CHECK_S = 15.0
#: Any single broker request of the watch gives up after this long.
REQUEST_S = 5.0


def epoch_topic(settings: Settings) -> str:
    return f"{settings.app.app_id}-apiwatch-epoch"


def epoch_spec(settings: Settings) -> NewTopic:
    return NewTopic(
        epoch_topic(settings),
        1,
        settings.topics.replication_factor,
        topic_configs={"cleanup.policy": "delete", "retention.ms": "-1"},
    )


def lost_what(settings: Settings, topic: str) -> str:
    """What a topic held that a broker restart without persistence takes with it."""
    t = settings.topics
    raw = {t.rum, t.synthetic, t.otlp}
    if topic in raw:
        return (
            "its unread events and the ingest group's committed offsets were lost; "
            "ingest restarts from the new topic's start, and events held in open buckets "
            "are gone too"
        )
    if topic == t.buckets:
        return "bucket summaries and synthetic runs not yet judged by detection were lost"
    if topic == t.alerts_pending:
        return "alerts detected but not yet linked and published were lost"
    if topic == t.alerts:
        return "published alerts not yet read by delivery or other consumers were lost"
    if topic == t.deadletter:
        return "the dead letters it held were lost"
    if topic.endswith("-__assignor-__leader"):
        return "Faust's leader topic (no data)"
    if topic.endswith("-changelog"):
        return (
            "the detection state it held (baselines, firing alerts, linker state) was lost: "
            "series go through their warm-up again"
        )
    if topic == epoch_topic(settings):
        return "marker of the broker's epoch (no data)"
    return "whatever it held was lost"


class BrokerWatch:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        specs: Iterable[NewTopic],
        metrics: Metrics,
        health: Health,
        *,
        more_specs: Callable[[], list[NewTopic]] = list,
        on_lost: Callable[[str], Awaitable[None] | None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.specs = list(specs)
        self.more_specs = more_specs
        self.metrics = metrics
        self.health = health
        self.on_lost = on_lost
        self.interval_s = interval_s
        self.epoch: str | None = None
        self.up = True
        self.down_since = 0.0
        self._reminded = 0.0
        self._epoch_checked = 0.0
        self.losses = 0

    # -- the marker ------------------------------------------------------------

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(**common_kwargs(self.settings.kafka, self.bootstrap))
        try:
            await asyncio.wait_for(admin.start(), REQUEST_S)
        except BaseException:
            await admin.close()
            raise
        return admin

    async def read_epoch(self) -> str | None:
        """The first record of the marker topic, or None if it holds none."""
        consumer = make_consumer(self.settings.kafka, group_id=None, bootstrap=self.bootstrap)
        await asyncio.wait_for(consumer.start(), REQUEST_S)
        try:
            tp = TopicPartition(epoch_topic(self.settings), 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + REQUEST_S
            while time.monotonic() < deadline:
                records = (await consumer.getmany(tp, timeout_ms=300, max_records=1)).get(tp)
                if records:
                    return (records[0].value or b"").decode()
            return None
        finally:
            await consumer.stop()

    async def write_epoch(self, created: bool) -> str:
        """Write a new epoch if the marker holds none; return the marker's epoch.

        ``created``: the marker was just created here, so it holds nothing yet.
        """
        if not created:
            epoch = await self.read_epoch()
            if epoch:
                return epoch
        producer = make_producer(self.settings.kafka, self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(epoch_topic(self.settings), uuid.uuid4().hex.encode())
        finally:
            await producer.stop()
        # Two workers may write at once: the first record wins, for both.
        return await self.read_epoch() or ""

    async def start(self) -> None:
        """Create the marker if missing and learn the epoch of the broker as it is now.

        Retries until the broker answers (it may go away while the worker starts).
        """
        delay = 0.5
        while True:
            try:
                created = await self._ensure([epoch_spec(self.settings)])
                self.epoch = await self.write_epoch(bool(created))
                break
            except (KafkaError, OSError, TimeoutError) as exc:
                self._went_down(repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._epoch_checked = time.monotonic()
        if not self.up:
            # It went away while the worker started: whether it kept its topics is
            # unknown, so treat it as lost (recreating what exists changes nothing).
            self._came_back()
            await self.recover(True)
        self.metrics.broker_up.set(1)
        self.health.beat("broker", epoch=self.epoch)

    def _went_down(self, why: str) -> None:
        now = time.monotonic()
        if self.up:
            self.up, self.down_since, self._reminded = False, now, now
            log.warning(
                "Kafka at %s stopped answering (%s); the stages wait and retry, and when it "
                "is back the worker checks whether it kept its topics",
                self.bootstrap,
                why,
            )
            self.metrics.broker_up.set(0)
            self.health.set_state("broker", "unreachable", since=time.time())
        elif now - self._reminded >= REMIND_S:
            self._reminded = now
            log.warning(
                "Kafka at %s still unreachable after %.0f s; retrying",
                self.bootstrap,
                now - self.down_since,
            )

    def _came_back(self) -> None:
        log.warning(
            "Kafka at %s answers again after %.0f s",
            self.bootstrap,
            time.monotonic() - self.down_since,
        )
        self.up = True
        self.metrics.broker_up.set(1)

    # -- topics ----------------------------------------------------------------

    async def _ensure(self, specs: list[NewTopic]) -> list[str]:
        """Create what is missing, replace what exists with the wrong partition count.

        Returns the names (re)created. A topic Tansu created on a client's first
        mention after its restart has Tansu's default partition count and no configs.
        """
        admin = await self._admin()
        try:
            existing = set(await asyncio.wait_for(admin.list_topics(), REQUEST_S))
            present = [s for s in specs if s.name in existing]
            wrong: list[NewTopic] = []
            if present:
                described = await admin.describe_topics([s.name for s in present])
                counts = {d["topic"]: len(d["partitions"]) for d in described}
                wrong = [s for s in present if counts.get(s.name) != s.num_partitions]
            if wrong:
                log.warning(
                    "topics with the wrong partition count (created with the broker's "
                    "defaults by a client's reconnect), replaced: %s",
                    ", ".join(s.name for s in wrong),
                )
                await admin.delete_topics([s.name for s in wrong])
            missing = [s for s in specs if s.name not in existing] + wrong
            for spec in missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([spec])
            return [s.name for s in missing]
        finally:
            await admin.close()

    # -- the loop --------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                return
            try:
                await self.check()
            except Exception:  # the watch must never take the worker down
                log.exception("broker check failed")

    async def _topics(self) -> set[str] | str:
        """The broker's topics, or why it did not answer."""
        try:
            admin = await self._admin()
        except (KafkaError, OSError, TimeoutError) as exc:
            return repr(exc)
        try:
            return set(await asyncio.wait_for(admin.list_topics(), REQUEST_S))
        except (KafkaError, OSError, TimeoutError) as exc:
            return repr(exc)
        finally:
            await admin.close()

    async def check(self) -> None:
        topics = await self._topics()
        now = time.monotonic()
        if isinstance(topics, str):
            self._went_down(topics)
            return
        was_down = not self.up
        if was_down:
            self._came_back()
        marker = epoch_topic(self.settings)
        lost = marker not in topics
        if not lost and (was_down or now - self._epoch_checked >= EPOCH_CHECK_S):
            try:
                epoch = await self.read_epoch()
            except (KafkaError, OSError, TimeoutError):
                return  # try again on the next poll
            self._epoch_checked = now
            # No record read (a slow fetch) proves nothing: only another epoch does.
            lost = epoch is not None and epoch != self.epoch
        if lost:
            await self.recover(was_down)
        self.health.beat("broker", epoch=self.epoch, losses=self.losses)

    async def recover(self, was_down: bool) -> None:
        """The broker lost its state: say what was lost, count it, and hand over to ``on_lost``.

        Topics are recreated by the next start (``ensure_topics``), not here: this
        process's producers may still hold writes for the old topics, which would land in
        the new ones (Faust's changelog recovery then waits for ever on them).
        """
        self.losses += 1
        self.metrics.broker_state_lost.inc()
        specs = [*self.specs, *self.more_specs()]
        groups: dict[str, list[str]] = {}
        for spec in specs:
            self.metrics.topics_recreated.labels(spec.name).inc()
            groups.setdefault(lost_what(self.settings, spec.name), []).append(spec.name)
        for what, topics in groups.items():
            log.warning(
                "topic%s %s lost with the broker's state at %s: %s",
                "s" if len(topics) > 1 else "",
                ", ".join(topics),
                self.bootstrap,
                what,
            )
        log.warning(
            "the broker at %s came back without its topics (a restart without persistence%s): "
            "events, summaries, alerts and dead letters that were in its %d topics are lost, "
            "committed offsets are gone; the topics are recreated and consumption restarts "
            "from their start",
            self.bootstrap,
            "" if was_down else ", between two checks",
            len(specs),
        )
        if self.on_lost is not None:
            result = self.on_lost("the broker lost its topics")
            if result is not None:
                await result
