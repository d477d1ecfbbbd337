"""Ingest stage: raw RUM and synthetic topics in, bucket summaries out. Batched aiokafka.

Per-event traffic never touches Faust's per-message path (DESIGN.md, "hot
path"): this stage pulls whole batches with ``getmany``, validates each batch
in one pydantic call (:class:`~apiwatch.models.decode.BatchDecoder`), folds
RUM events into per-series event-time buckets with numpy (one
:class:`~apiwatch.models.aggregate.BucketFolder` per source partition), and
forwards each synthetic run as it is. What it produces on the buckets topic is
orders of magnitude smaller than what it reads.

Nothing is lost: rejects go to the dead-letter topic; offsets are committed
only up to the first event still held in an open bucket, and only after the
summaries and dead letters before that point are acknowledged by the broker.
A crash replays from there; the detect stage drops the partial re-emission of
a bucket it has already judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from apiwatch.models.aggregate import BucketFolder
from apiwatch.models.buckets import (
    BucketSummary,
    SyntheticRun,
    synthetic_series_key,
)
from apiwatch.models.deadletter import Reason
from apiwatch.models.decode import BatchDecoder, Rejected
from apiwatch.models.events import RumEvent, SyntheticResult
from apiwatch.models.fastpath import RumColumns, RumFastPath
from apiwatch.settings import Settings
from apiwatch.streams.deadletters import DeadLetterSink
from apiwatch.streams.kafka import make_consumer, make_producer
from apiwatch.streams.metrics import Health, Metrics

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class IngestExtension(Protocol):
    """A second consumer of each valid RUM batch on the same batched path (e.g. access patterns).

    It folds events into its own state, hands back records to produce, and
    says how far each source partition may be committed on its behalf, so
    raw offsets only move once everything fed by them is durable downstream.
    """

    name: str

    def on_batch(
        self, partition: int, events: list[RumEvent], offsets: np.ndarray, now: float
    ) -> None:
        """Fold one batch of valid events from one source partition."""

    def drain(self, now: float) -> list[tuple[str, bytes, bytes]]:
        """Records ready to produce, as (topic, key, value)."""

    def committable(self, partition: int) -> int | None:
        """Lowest source offset still held in open state, or None if nothing is held."""

    def forget_partition(self, partition: int) -> None:
        """The partition was revoked: drop its open state (the new owner replays it)."""


COMMIT_INTERVAL_S = 1.0
#: Closing the Kafka clients (a final commit, leaving the group) gives up after this long.
CLOSE_TIMEOUT_S = 10.0


@dataclass
class _PartitionState:
    folder: BucketFolder
    last_event_wall: float = 0.0
    last_wm_ms: int = 0
    late_seen: int = 0


@dataclass
class IngestStats:
    messages: int = 0
    events: int = 0
    rejected: int = 0
    summaries: int = 0
    synthetic_runs: int = 0
    commits: int = 0
    batch_failures: int = 0
    last_commit: dict[str, int] = field(default_factory=dict)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: IngestStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "%s assigned %s",
            self.stage.name,
            sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned),
        )


class IngestStage:
    """Consume raw events in batches, validate, fold into buckets, emit summaries.

    With ``buckets=False`` the same batched path feeds only the extensions, in its
    own consumer group (``group_id``): the access-pattern role runs that way, so
    it can take its own process and core without slowing the bucket path. Bad
    input is dead-lettered by the bucket path alone, so it is reported once.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        health: Health | None = None,
        bootstrap: str | None = None,
        extensions: list[IngestExtension] | None = None,
        *,
        buckets: bool = True,
        group_id: str | None = None,
        name: str = "ingest",
    ) -> None:
        if not buckets and not extensions:
            raise ValueError("an ingest stage without buckets needs an extension to feed")
        self.settings = settings
        self.cfg = settings.ingest
        self.buckets = buckets
        self.group_id = group_id or self.cfg.group_id
        self.name = name
        self.topics = settings.topics
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.bootstrap = bootstrap
        self.rum_decoder = BatchDecoder(RumEvent, self.cfg.max_message_bytes)
        self.rum_fast = RumFastPath(self.cfg.max_message_bytes)
        self.synthetic_decoder = BatchDecoder(SyntheticResult, self.cfg.max_message_bytes)
        self.partitions: dict[int, _PartitionState] = {}
        self.synthetic_next: dict[int, int] = {}
        self.extensions: list[IngestExtension] = list(extensions or [])
        self.stats = IngestStats()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.deadletters: DeadLetterSink | None = None
        self._pending: list[asyncio.Future[object]] = []
        self._last_commit = 0.0
        self._lag: dict[TopicPartition, int] = {}
        #: Offsets committed by this stage, per partition (where a replay starts).
        self._committed: dict[TopicPartition, int] = {}
        #: Per partition, the offset below which events were already counted (a replay
        #: after a failed batch does not count them in the metrics again).
        self._counted: dict[TopicPartition, int] = {}
        #: Per partition, the offset below which messages were counted as consumed.
        self._seen: dict[TopicPartition, int] = {}
        #: Per partition, the offset below which rejects were dead-lettered already.
        self._rejected_to: dict[TopicPartition, int] = {}
        #: Per partition, the end of a failed batch: up to there, one message at a time.
        self._isolate: dict[TopicPartition, int] = {}

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        k = self.settings.kafka
        self.producer = make_producer(k, self.bootstrap)
        await self.producer.start()
        self.deadletters = DeadLetterSink(self.producer, self.topics.deadletter, self.metrics)
        self.consumer = make_consumer(
            k,
            group_id=self.group_id,
            bootstrap=self.bootstrap,
            max_poll_records=self.cfg.max_batch,
            # Big fetches: fewer round trips, during which the loop would sit idle.
            max_partition_fetch_bytes=16 << 20,
            fetch_max_bytes=64 << 20,
        )
        topics = [self.topics.rum, self.topics.synthetic] if self.buckets else [self.topics.rum]
        self.consumer.subscribe(topics, listener=_Rebalance(self))
        await self.consumer.start()
        self.health.beat(self.name)

    async def stop(self) -> None:
        """Commit what is safe, then close. Open buckets are not emitted: they replay."""
        try:
            if self.consumer is not None and self.producer is not None:
                await asyncio.wait_for(self._commit(force=True), CLOSE_TIMEOUT_S)
        except Exception as exc:  # closing anyway; the next owner replays from the last commit
            log.warning("final ingest commit failed: %r", exc)
        finally:
            await self._close_clients()
            self.health.set_state(self.name, "stopped")

    async def _close_clients(self) -> None:
        consumer, self.consumer = self.consumer, None
        producer, self.producer = self.producer, None
        for client in (consumer, producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), CLOSE_TIMEOUT_S)
                except Exception as exc:  # a broker gone away: nothing more to flush to
                    log.warning("closing a Kafka client of %s failed: %r", self.name, exc)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                step = asyncio.ensure_future(self.step())
                await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    # Stopping while a step waits (on a broker that went away, a commit
                    # retries for ever): drop it; the partitions replay from the last commit.
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await step
                    continue
                exc = step.exception()
                if isinstance(exc, KafkaError):
                    # The broker, not the input: the clients reconnect; try the next step.
                    log.warning("%s: Kafka error, retrying: %r", self.name, exc)
                    await asyncio.sleep(0.5)
                elif exc is not None:
                    raise exc
        finally:
            stopping.cancel()
            await asyncio.shield(self.stop())

    # -- one iteration --------------------------------------------------------

    async def step(self, timeout_ms: int = 100) -> None:
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.cfg.max_batch)
        now = time.time()
        for tp, records in batches.items():
            if not records:
                continue
            fresh = self._fresh(tp, records[0].offset, len(records))
            self.metrics.messages_in.labels(tp.topic).inc(fresh)
            self.stats.messages += fresh
            self.metrics.processing_delay.labels(self.name).observe(
                max(0.0, now - records[-1].timestamp / 1000.0)
            )
            isolate = self._isolate.get(tp)
            if isolate is not None and records[0].offset < isolate:
                await self._one_by_one(tp, records, now, isolate)
                continue
            try:
                await self._ingest(tp, records, now)
            except Exception as exc:
                await self._batch_failed(tp, records, now, exc)
        self._update_lag()
        for topic in {tp.topic for tp in self._lag}:
            lag = sum(v for tp, v in self._lag.items() if tp.topic == topic)
            self.metrics.consumer_lag.labels(f"{topic}:{self.name}").set(lag)
        self._advance_idle(now)
        await self._emit_closed()
        await self._commit()
        self.health.beat(self.name, events=self.stats.events, rejected=self.stats.rejected)

    def _update_lag(self) -> None:
        """Lag of every owned partition, from the high watermark of its latest fetch.

        Every partition, not only those that returned records: a fetch that comes
        back empty still carries the partition's end, so a worker that keeps up
        reads 0 for real, and one that falls behind on a quiet partition shows it.
        """
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            consumed = self._seen.get(tp)
            if highwater is not None and consumed is not None:
                self._lag[tp] = max(0, highwater - consumed)

    def _fresh(self, tp: TopicPartition, first: int, n: int) -> int:
        """How many of ``n`` consecutive offsets from ``first`` were not consumed before
        (a replay after a failed batch consumes them again); marks them consumed."""
        seen = self._seen.get(tp, 0)
        self._seen[tp] = max(seen, first + n)
        return max(0, min(n, first + n - seen))

    async def _ingest(self, tp: TopicPartition, records: list[Record], now: float) -> None:
        if tp.topic == self.topics.rum:
            await self._ingest_rum(tp, records, now)
        elif tp.topic == self.topics.synthetic:
            await self._ingest_synthetic(tp, records, now)

    async def _batch_failed(
        self, tp: TopicPartition, records: list[Record], now: float, exc: Exception
    ) -> None:
        """A batch raised unexpectedly: account for every message in it, then carry on.

        A synthetic batch fails before anything is sent (runs are built first), so
        its messages are simply processed again one at a time. A RUM batch may have
        half-folded into the partition's open buckets: that state is dropped and
        the partition replays from its last commit (as after a crash, which the
        detect stage already de-duplicates), with the failed range one message at a
        time. Either way, a message that fails alone is dead-lettered with the
        exception as its reason; no message is lost and none counted twice.
        """
        self.stats.batch_failures += 1
        self.metrics.ingest_batch_failures.labels(self.name).inc()
        end = records[-1].offset + 1
        log.exception(
            "%s: a batch of %d message(s) from %s[%d]@%d-%d failed (%s); %s",
            self.name,
            len(records),
            tp.topic,
            tp.partition,
            records[0].offset,
            end - 1,
            type(exc).__name__,
            "processing them one at a time"
            if tp.topic != self.topics.rum
            else "replaying the partition from its last commit, this range one message at a time",
        )
        if tp.topic != self.topics.rum:
            await self._one_by_one(tp, records, now, end)
            return
        assert self.consumer is not None
        self.partitions.pop(tp.partition, None)
        for ext in self.extensions:
            ext.forget_partition(tp.partition)
        self._isolate[tp] = end
        committed = self._committed.get(tp)
        if committed is None:
            committed = await self.consumer.committed(tp)
        if committed is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, committed)

    async def _one_by_one(
        self, tp: TopicPartition, records: list[Record], now: float, upto: int
    ) -> None:
        """Process the records below ``upto`` singly (dead-lettering any that fail), the rest
        as a batch."""
        for i, rec in enumerate(records):
            if rec.offset >= upto:
                self._isolate.pop(tp, None)
                rest = records[i:]
                try:
                    await self._ingest(tp, rest, now)
                except Exception as exc:
                    await self._batch_failed(tp, rest, now, exc)
                break
            try:
                await self._ingest(tp, [rec], now)
            except Exception as exc:
                await self._failed_message(tp, rec, exc)
        else:
            if records[-1].offset + 1 >= upto:
                self._isolate.pop(tp, None)

    async def _failed_message(self, tp: TopicPartition, rec: Record, exc: Exception) -> None:
        assert self.deadletters is not None
        log.warning(
            "%s: %s[%d]@%d fails on its own too: dead-lettered (%r)",
            self.name,
            tp.topic,
            tp.partition,
            rec.offset,
            exc,
        )
        await self.deadletters.send(
            rec, reason=Reason.UNSUPPORTED, detail=f"ingest failed: {type(exc).__name__}: {exc}"
        )
        self.stats.rejected += 1
        self._rejected_to[tp] = max(self._rejected_to.get(tp, 0), rec.offset + 1)
        self._counted[tp] = max(self._counted.get(tp, 0), rec.offset + 1)
        if tp.topic == self.topics.rum:
            # The folder may commit past it: it is dead-lettered.
            self._state(tp).folder.fold(
                tp.partition,
                [],
                np.empty(0, np.int64),
                np.empty(0, np.int64),
                np.empty(0),
                first_offset=rec.offset,
                next_offset=rec.offset + 1,
            )
        else:
            self.synthetic_next[tp.partition] = rec.offset + 1

    def _context(self, now: float) -> dict[str, float]:
        return {"now": now, "max_future_skew_s": self.cfg.max_future_skew_s}

    async def _reject(
        self, tp: TopicPartition, records: list[Record], rejected: list[Rejected]
    ) -> None:
        assert self.deadletters is not None
        # A range replayed after a failed batch: its dead letters went out already.
        done = self._rejected_to.get(tp, 0)
        rejected = [r for r in rejected if records[r.index].offset >= done]
        for r in rejected:
            rec = records[r.index]
            await self.deadletters.send(rec, reason=r.reason, detail=r.detail)
        self.stats.rejected += len(rejected)
        self._rejected_to[tp] = max(done, records[-1].offset + 1)

    def _state(self, tp: TopicPartition) -> _PartitionState:
        state = self.partitions.get(tp.partition)
        if state is None:
            state = _PartitionState(
                BucketFolder(
                    self.cfg.bucket_s,
                    self.cfg.allowed_lateness_s,
                    samples_per_bucket=self.cfg.sample_ids_per_bucket,
                    origin=f"{tp.topic}[{tp.partition}]",
                )
            )
            self.partitions[tp.partition] = state
        return state

    def _count(self, tp: TopicPartition, offsets: Iterable[int], next_offset: int) -> int:
        """Events at offsets not counted before (a replay after a failed batch counts once)."""
        counted = self._counted.get(tp, 0)
        self._counted[tp] = max(counted, next_offset)
        return sum(1 for o in offsets if o >= counted)

    async def _ingest_rum(self, tp: TopicPartition, records: list[Record], now: float) -> None:
        state = self._state(tp)
        values = [r.value for r in records]
        next_offset = records[-1].offset + 1
        if self.extensions:
            # Extensions read model objects: the pydantic path, then columns from the models.
            decoded = self.rum_decoder.decode(values, self._context(now))
            k = len(decoded.events)
            offsets = np.fromiter((records[i].offset for i in decoded.source_index), np.int64, k)
            if k:
                for ext in self.extensions:
                    ext.on_batch(tp.partition, decoded.events, offsets, now)
            if not self.buckets:
                # Bad input is dead-lettered once, by the bucket path's own consumer
                # group; here the folder only tracks offsets, so no columns are built.
                state.folder.fold(
                    tp.partition,
                    [],
                    np.empty(0, np.int64),
                    np.empty(0, np.int64),
                    np.empty(0),
                    first_offset=records[0].offset,
                    next_offset=next_offset,
                )
                src = decoded.source_index
                self.stats.events += self._count(tp, (records[i].offset for i in src), next_offset)
                return
            cols = RumColumns.of_events(decoded)
        else:
            cols = self.rum_fast.decode(values, self._context(now))
        n = len(cols.keys)
        await self._reject(tp, records, cols.rejected)
        offsets = np.fromiter((records[i].offset for i in cols.source_index), np.int64, n)
        topic, part, ids = tp.topic, tp.partition, cols.event_ids

        def event_id(i: int) -> str:
            return ids[i] or f"{topic}:{part}:{offsets[i]}"

        state.folder.fold(
            tp.partition,
            cols.keys,
            np.array(cols.ts_ms, dtype=np.int64),
            np.array(cols.status, dtype=np.int64),
            np.array(cols.duration_ms, dtype=np.float64),
            first_offset=records[0].offset,
            offsets=offsets,
            event_id=event_id,
            next_offset=next_offset,
        )
        if n:
            state.last_event_wall = now
            state.last_wm_ms = state.folder.watermark_ms or 0
        fresh = self._count(tp, (records[i].offset for i in cols.source_index), next_offset)
        self.stats.events += fresh
        self.metrics.events_in.labels(tp.topic).inc(fresh)

    async def _ingest_synthetic(
        self, tp: TopicPartition, records: list[Record], now: float
    ) -> None:
        assert self.producer is not None
        decoded = self.synthetic_decoder.decode([r.value for r in records], self._context(now))
        # Everything that may raise comes before the first send, so a failed batch
        # has sent nothing and can be processed again one message at a time.
        runs = [
            SyntheticRun(
                series=synthetic_series_key(result.environment, result.check_id),
                result=result,
                origin=f"{tp.topic}[{tp.partition}]@{records[i].offset}",
            )
            for result, i in zip(decoded.events, decoded.source_index, strict=True)
        ]
        encoded = [(run.series.encode(), run.model_dump_json().encode()) for run in runs]
        await self._reject(tp, records, decoded.rejected)
        for key, value in encoded:
            fut = await self.producer.send(self.topics.buckets, value=value, key=key)
            self._pending.append(fut)
        self.synthetic_next[tp.partition] = records[-1].offset + 1
        fresh = self._count(
            tp, (records[i].offset for i in decoded.source_index), records[-1].offset + 1
        )
        self.stats.synthetic_runs += fresh
        self.metrics.events_in.labels(tp.topic).inc(fresh)

    def _advance_idle(self, now: float) -> None:
        # A partition with no new events still moves on in event time, at wall-clock
        # pace, so its last buckets close and quiet series keep getting ticks.
        for p, state in self.partitions.items():
            if state.last_event_wall and now - state.last_event_wall > self.cfg.idle_flush_s:
                idle_ms = int((now - state.last_event_wall) * 1000)
                state.folder.advance_watermark(p, state.last_wm_ms + idle_ms)

    async def _emit_closed(self) -> None:
        assert self.producer is not None
        open_buckets = 0
        for state in self.partitions.values():
            closed = state.folder.close_ready()
            if closed:
                await self._send_summaries(closed)
            open_buckets += state.folder.open_buckets
            self.metrics.late_events.inc(state.folder.late_total - state.late_seen)
            state.late_seen = state.folder.late_total
        for ext in self.extensions:
            for topic, key, value in ext.drain(time.time()):
                self._pending.append(await self.producer.send(topic, value=value, key=key))
        self.metrics.open_buckets.set(open_buckets)
        self.metrics.series.set(sum(s.folder.series_count for s in self.partitions.values()))

    async def _send_summaries(self, summaries: list[BucketSummary]) -> None:
        assert self.producer is not None
        for s in summaries:
            fut = await self.producer.send(
                self.topics.buckets, value=s.model_dump_json().encode(), key=s.series.encode()
            )
            self._pending.append(fut)
        self.stats.summaries += len(summaries)
        self.metrics.buckets_out.inc(len(summaries))

    async def _commit(self, force: bool = False) -> None:
        assert self.consumer is not None and self.deadletters is not None
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_INTERVAL_S:
            return
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
        await self.deadletters.wait()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        assigned = self.consumer.assignment()
        for p, state in self.partitions.items():
            tp = TopicPartition(self.topics.rum, p)
            off = state.folder.committable().get(p)
            for ext in self.extensions:
                held = ext.committable(p)
                if held is not None and off is not None:
                    off = min(off, held)
            if off is not None and tp in assigned:
                offsets[tp] = OffsetAndMetadata(off, "")
        for p, off in self.synthetic_next.items():
            tp = TopicPartition(self.topics.synthetic, p)
            if tp in assigned:
                offsets[tp] = OffsetAndMetadata(off, "")
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except CommitFailedError as exc:
                # The group rebalanced meanwhile: the partitions' new owner replays from
                # the previous commit (at-least-once), so this is not an error of ours.
                log.warning("%s: commit refused after a rebalance: %s", self.name, exc)
                self._last_commit = now
                return
            self._committed.update({tp: o.offset for tp, o in offsets.items()})
            self.stats.commits += 1
            self.stats.last_commit = {
                f"{tp.topic}[{tp.partition}]": o.offset for tp, o in offsets.items()
            }
        self._last_commit = now

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what is safe for the partitions we lose, then forget their open buckets.

        The new owner resumes from that commit and rebuilds the open buckets from
        the replayed events; emitting them half-full here would be judged twice.
        """
        if self.consumer is None or self.producer is None:
            return
        try:
            await self._commit(force=True)
        except Exception as exc:
            log.warning("commit on revoke failed (the new owner replays further): %s", exc)
        for tp in revoked:
            self._lag.pop(tp, None)
            self._committed.pop(tp, None)
            self._isolate.pop(tp, None)
            self._counted.pop(tp, None)
            self._seen.pop(tp, None)
            self._rejected_to.pop(tp, None)
            if tp.topic == self.topics.rum:
                self.partitions.pop(tp.partition, None)
                for ext in self.extensions:
                    ext.forget_partition(tp.partition)
            elif tp.topic == self.topics.synthetic:
                self.synthetic_next.pop(tp.partition, None)
