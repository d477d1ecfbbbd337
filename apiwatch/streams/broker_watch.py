"""Watch the broker: say when it goes away, and notice when it comes back without its topics.

The embedded broker (Tansu, ``memory://``) keeps everything in memory, so a restart
loses every topic, every committed offset and every changelog. Kafka clients just
reconnect, and Tansu creates a topic on first mention with its own defaults, so
without a check the worker would carry on against a hollow broker: the ingest
consumer stuck on offsets that no longer exist, topics without their configs or
with the wrong partition count, and nothing in the log to say what was lost.

Each worker learns the broker's *epoch* before its stages start
(:meth:`BrokerWatch.claim`): a random id, the first record of a one-partition marker
topic ``<app_id>-apiwatch-epoch``. A marker that is missing means that no worker of
this app has started on the broker as it is now: a first start, or a broker that
lost its state. The marker's log elects one worker (the first record written wins;
Tansu lets concurrent CreateTopics of one name all succeed, so creation cannot): it
checks the topics (:meth:`BrokerWatch.repair`), then writes a ``ready`` record;
workers starting at the same moment wait for it, so none of them consumes or restores
a topic being replaced.

What the check repairs: *phantom partitions*. A producer of the broker's earlier
life (a worker that had writes buffered while the broker was away) re-sends them as
soon as it reconnects, with the metadata it had cached. Tansu acknowledges a produce
to a topic it does not have, records the partition's end offset, and keeps no record;
when the topic is created again under that name its partitions report an end offset
(ListOffsets) that no fetch reaches (the fetch high watermark stays 0), and a write to
them fails. Faust's changelog recovery reads up to the reported end and waited for
ever on them. A topic with such a partition is deleted and created again (that
clears it; it held nothing a consumer could read).

While the worker runs, :meth:`BrokerWatch.run` polls the broker (a metadata request)
every ``interval_s``:

- broker unreachable: one WARNING (and one every ``REMIND_S`` while it lasts), the
  ``broker`` entry of /health turns ``unreachable`` (so /health answers 503) and
  ``apiwatch_broker_up`` is 0; the stages keep retrying on their own;
- broker back: a marker topic that is gone, or holds another epoch, means the broker
  lost its state (another worker may have recreated the topics first). The watch logs
  one WARNING per topic group saying what was lost, counts it in
  ``apiwatch_broker_state_lost`` and ``apiwatch_topics_recreated``, and calls
  ``on_lost``: the worker exits (code 75) for its supervisor to start it again, and
  that start recreates and repairs the topics as above.
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
from apiwatch.streams.kafka import (
    KafkaUnavailable,
    common_kwargs,
    make_consumer,
    make_producer,
)
from apiwatch.streams.metrics import Health, Metrics

log = logging.getLogger(__name__)

#: While the broker stays away, a reminder this often.
REMIND_S = 30.0
#: Without an observed outage, the epoch is still read this often (a restart between polls).
EPOCH_CHECK_S = 15.0
#: Any single broker request of the watch gives up after this long.
REQUEST_S = 5.0
#: A worker that did not create the epoch marker waits this long for its epoch.
EPOCH_WAIT_S = 60.0
#: The marker record that says the epoch's first worker checked the topics.
READY = b"ready"
#: Attempts at claiming the epoch while the broker does not answer (doubling delays to 5 s).
CLAIM_ATTEMPTS = 30


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
        epoch_wait_s: float = EPOCH_WAIT_S,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.specs = list(specs)
        self.more_specs = more_specs
        self.metrics = metrics
        self.health = health
        self.on_lost = on_lost
        self.interval_s = interval_s
        self.epoch_wait_s = epoch_wait_s
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

    async def read_marker(self, within_s: float = REQUEST_S) -> list[bytes]:
        """Every record of the marker topic, read up to its end (a fetch's high watermark)."""
        consumer = make_consumer(self.settings.kafka, group_id=None, bootstrap=self.bootstrap)
        await asyncio.wait_for(consumer.start(), REQUEST_S)
        try:
            tp = TopicPartition(epoch_topic(self.settings), 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            values: list[bytes] = []
            deadline = time.monotonic() + within_s
            while time.monotonic() < deadline:
                records = (await consumer.getmany(tp, timeout_ms=300)).get(tp, [])
                values += [r.value or b"" for r in records]
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    return values
            raise TimeoutError(f"reading the epoch marker took over {within_s:.0f} s")
        finally:
            await consumer.stop()

    async def read_epoch(self) -> str | None:
        """The first record of the marker topic, or None if it holds none."""
        records = await self.read_marker()
        return records[0].decode() if records else None

    async def _write_marker(self, value: bytes) -> None:
        producer = make_producer(self.settings.kafka, self.bootstrap)
        await asyncio.wait_for(producer.start(), REQUEST_S)
        try:
            await asyncio.wait_for(
                producer.send_and_wait(epoch_topic(self.settings), value), REQUEST_S
            )
        finally:
            await producer.stop()

    async def _ensure_marker(self) -> None:
        admin = await self._admin()
        try:
            if epoch_topic(self.settings) not in set(
                await asyncio.wait_for(admin.list_topics(), REQUEST_S)
            ):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await asyncio.wait_for(
                        admin.create_topics([epoch_spec(self.settings)]), REQUEST_S
                    )
        finally:
            await admin.close()

    async def claim(self, specs: Iterable[NewTopic], attempts: int = CLAIM_ATTEMPTS) -> str:
        """Learn the broker's epoch before the stages start (see the module doc).

        ``specs``: every topic of the worker, Faust's included, checked by the worker
        that starts the epoch. Retries while the broker does not answer.
        """
        specs = list(specs)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                self.epoch = await self._claim(specs)
                self._epoch_checked = time.monotonic()
                return self.epoch
            except (KafkaError, OSError, TimeoutError) as exc:
                if attempt == attempts:
                    raise KafkaUnavailable(
                        f"could not read or start the broker epoch at {self.bootstrap} "
                        f"after {attempts} attempts: {exc!r}"
                    ) from exc
                log.warning(
                    "reading the broker epoch at %s failed (%r); retrying in %.1f s",
                    self.bootstrap,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def _claim(self, specs: list[NewTopic]) -> str:
        """The marker's log elects one worker: the first record is the epoch (the id of the
        worker that wrote it); a ``ready`` record follows once that worker checked the
        topics. CreateTopics cannot elect: Tansu lets concurrent creates all succeed."""
        await self._ensure_marker()
        records = await self.read_marker()
        if not records:
            candidate = uuid.uuid4().hex
            await self._write_marker(candidate.encode())
            records = await self.read_marker()
            if records and records[0].decode() == candidate:
                log.info(
                    "no epoch on %s (a first start, or a broker that lost its state): this "
                    "worker starts epoch %s and checks the topics before the stages start",
                    self.bootstrap,
                    candidate,
                )
                return await self._check_and_open(specs, candidate)
        epoch = records[0].decode()
        if READY in records[1:]:
            return epoch
        log.info(
            "epoch %s on %s is not ready yet: waiting for the worker that started it to "
            "check the topics",
            epoch,
            self.bootstrap,
        )
        deadline = time.monotonic() + self.epoch_wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            if READY in (await self.read_marker())[1:]:
                return epoch
        # The worker that started the epoch died before it was ready.
        log.warning(
            "epoch %s on %s still not ready after %.0f s: this worker checks the topics",
            epoch,
            self.bootstrap,
            self.epoch_wait_s,
        )
        return await self._check_and_open(specs, epoch)

    async def _check_and_open(self, specs: list[NewTopic], epoch: str) -> str:
        await self.repair(specs)
        await self._write_marker(READY)
        log.info("broker epoch at %s: %s (topics checked)", self.bootstrap, epoch)
        return epoch

    async def start(self) -> None:
        """Start watching: the epoch was claimed before the stages started (``claim``),
        or is claimed here. A loss between the two is caught by the first check."""
        if self.epoch is None:
            await self.claim([*self.specs, *self.more_specs()])
        self._epoch_checked = time.monotonic()
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

    async def repair(self, specs: Iterable[NewTopic]) -> list[str]:
        """Create the missing topics, and delete and create again those that cannot be used.

        Replaced: a topic with a *phantom* partition (its reported end offset beyond the
        high watermark a fetch returns: see the module doc), and an empty topic with the
        wrong partition count (made with the broker's defaults by a client's metadata
        request). A topic that holds records is never replaced for its partition count:
        that is only logged. Returns the names replaced (each counted in
        ``apiwatch_topics_recreated``).
        """
        specs = list(specs)
        admin = await self._admin()
        try:
            existing = set(await asyncio.wait_for(admin.list_topics(), REQUEST_S))
            for spec in specs:
                if spec.name not in existing:
                    with contextlib.suppress(TopicAlreadyExistsError):
                        await asyncio.wait_for(admin.create_topics([spec]), REQUEST_S)
            described = await asyncio.wait_for(
                admin.describe_topics([s.name for s in specs]), REQUEST_S
            )
        finally:
            await admin.close()
        partitions = {
            d["topic"]: sorted(p["partition"] for p in d["partitions"])
            for d in described
            if not d["error_code"]
        }
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        ends, highwaters = await self._ends_and_highwaters(tps)
        replace: list[NewTopic] = []
        for spec in specs:
            parts = partitions.get(spec.name, [])
            tp_of = [TopicPartition(spec.name, p) for p in parts]
            phantom = [
                (tp.partition, ends[tp], highwaters[tp])
                for tp in tp_of
                if tp in ends and tp in highwaters and ends[tp] > highwaters[tp]
            ]
            if phantom:
                log.warning(
                    "topic %s: partition(s) %s report an end offset that no fetch reaches "
                    "(end/fetched: %s): writes the broker acknowledged without a topic to "
                    "hold them, re-sent by a client of its earlier life; no consumer or "
                    "producer gets past them, so the topic is deleted and created again",
                    spec.name,
                    ", ".join(str(p) for p, _, _ in phantom),
                    ", ".join(f"{e}/{h}" for _, e, h in phantom),
                )
                replace.append(spec)
            elif parts and len(parts) != spec.num_partitions:
                if all(highwaters.get(tp, 1) == 0 for tp in tp_of):
                    log.warning(
                        "topic %s has %d partition(s), not %d (made with the broker's "
                        "defaults by a client), and is empty: created again",
                        spec.name,
                        len(parts),
                        spec.num_partitions,
                    )
                    replace.append(spec)
                else:
                    log.warning(
                        "topic %s has %d partition(s), not the %d configured; it holds "
                        "records, so it is left as it is",
                        spec.name,
                        len(parts),
                        spec.num_partitions,
                    )
        if replace:
            await self._recreate(replace)
            for spec in replace:
                self.metrics.topics_recreated.labels(spec.name).inc()
        return [s.name for s in replace]

    async def _ends_and_highwaters(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Per partition, the end offset the broker reports, then the high watermark of a
        fetch from the start (in that order: a record written between the two raises
        only the second, so it can never pass for a phantom)."""
        if not tps:
            return {}, {}
        consumer = make_consumer(self.settings.kafka, group_id=None, bootstrap=self.bootstrap)
        await asyncio.wait_for(consumer.start(), REQUEST_S)
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(tps), REQUEST_S)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            highwaters: dict[TopicPartition, int] = {}
            deadline = time.monotonic() + 2 * REQUEST_S
            while len(highwaters) < len(tps) and time.monotonic() < deadline:
                await consumer.getmany(*tps, timeout_ms=300, max_records=1)
                for tp in tps:
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        highwaters[tp] = hw
                        consumer.pause(tp)
            missing = [tp for tp in tps if tp not in highwaters]
            if missing:
                log.warning(
                    "no fetch answer for %d partition(s) within %.0f s (%s): not checked",
                    len(missing),
                    2 * REQUEST_S,
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in missing[:8]),
                )
            return dict(ends), highwaters
        finally:
            await consumer.stop()

    async def _recreate(self, specs: list[NewTopic]) -> None:
        """Delete ``specs`` and create them again, waiting until the broker shows each step."""
        names = [s.name for s in specs]
        admin = await self._admin()
        try:
            await asyncio.wait_for(admin.delete_topics(names), REQUEST_S)
            await self._until_listed(admin, names, present=False)
            for spec in specs:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await asyncio.wait_for(admin.create_topics([spec]), REQUEST_S)
            await self._until_listed(admin, names, present=True)
        finally:
            await admin.close()

    @staticmethod
    async def _until_listed(
        admin: AIOKafkaAdminClient, names: list[str], *, present: bool, within_s: float = 30.0
    ) -> None:
        # A Kafka broker deletes and creates topics asynchronously.
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            listed = set(await asyncio.wait_for(admin.list_topics(), REQUEST_S))
            if all((n in listed) == present for n in names):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"topics {names} not {'created' if present else 'deleted'} in time")

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

        Topics are recreated by the next start (``claim``), not here: Faust does not
        recover in process from changelogs that vanished under it, and this process's
        producers may still hold writes for the old topics. ``on_lost`` ends the process
        at once, so the writes it can still re-send are as few as can be.
        """
        self.losses += 1
        self.metrics.broker_state_lost.inc()
        specs = [*self.specs, *self.more_specs()]
        groups: dict[str, list[str]] = {}
        for spec in specs:
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
