"""Check a Faust table's restored state against its changelog, read to the real end.

Faust restores a table by reading its changelog up to the end offset the broker
reports. The embedded broker reports end offsets 14-23 records short (DESIGN.md),
so a restore can stop early and leave a key one or more updates behind while the
source offsets that produced those updates are already committed: they would
never be replayed, and a bucket would silently go missing from a baseline.

:class:`ChangelogCheck` closes that gap. Before a partition's first message after
an assignment is processed, it re-reads the tail of that changelog partition
with a plain consumer, from a margin before the reported end up to the high
watermark of the fetch responses (which Tansu reports right), and puts the latest
value of every key there into the table's store when the restore left it older.
Nothing is written to the changelog: the records are already in it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson
from aiokafka import TopicPartition

from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_consumer

log = logging.getLogger(__name__)

#: Records before the reported end offset that are read again (it is short on Tansu).
MARGIN = 1000
#: How long one poll waits for records.
POLL_MS = 300


async def read_tail(
    settings: Settings, topic: str, partition: int, margin: int = MARGIN, within_s: float = 30.0
) -> dict[bytes, bytes | None]:
    """Latest value per key of the last records of one partition (None: a tombstone)."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, max(0, end - margin))
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            records = (await consumer.getmany(tp, timeout_ms=POLL_MS)).get(tp, [])
            for r in records:
                if r.key is not None:
                    latest[r.key] = r.value
            # The end is the high watermark of a fetch response, which Tansu reports
            # right, while its ListOffsets answer can be a whole batch short. Not an
            # empty poll: on a loaded machine a poll comes back empty while the next
            # fetch is still on its way, and the tail it would bring was missed.
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= max(end, highwater):
                return latest
        log.warning("reading %s[%d] to its end took over %.0f s", topic, partition, within_s)
        return latest
    finally:
        await consumer.stop()


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, stop: int, within_s: float = 30.0
) -> list[Any]:
    """The records of one partition from offset ``start`` up to (not including) ``stop``."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline and await consumer.position(tp) < stop:
            records = (await consumer.getmany(tp, timeout_ms=POLL_MS)).get(tp, [])
            out.extend(r for r in records if r.offset < stop)
        return out
    finally:
        await consumer.stop()


class SkipGuard:
    """Catches messages a rebalance skipped on a topic without offset gaps.

    Faust can hand a partition over past messages nobody processed (its commit or
    seek around a rebalance), the very first message included. The stage keeps the
    last offset it handled per partition in its own table (so in the same changelog
    partition as its state, restored with it); a message more than one past that
    mark means skipped ones, which :meth:`missed` reads again for the stage to
    handle first.
    """

    def __init__(self, table: Any, settings: Settings, topic: str, stage: str) -> None:
        self.table = table
        self.settings = settings
        self.topic = topic
        self.stage = stage

    @staticmethod
    def key(partition: int) -> bytes:
        return b"\x00offset/%d" % partition

    async def missed(self, partition: int, offset: int) -> list[Any]:
        # No mark yet: nothing was handled, so the first message must be the first
        # one (a read from 0 ends at once where retention moved the log start).
        last = self.table.get(self.key(partition))
        last = -1 if last is None else last
        if offset <= last + 1:
            return []
        records = await read_range(self.settings, self.topic, partition, last + 1, offset)
        if records:
            log.warning(
                "%s on %s[%d] got offset %d after %d: %d skipped message(s) read again",
                self.stage,
                self.topic,
                partition,
                offset,
                last,
                len(records),
            )
        return records

    def mark(self, partition: int, offset: int) -> None:
        self.table[self.key(partition)] = offset


class ChangelogCheck:
    """Repairs keys of a JSON-valued Faust table that its restore left behind."""

    def __init__(self, app: faust.App, table: Any, settings: Settings) -> None:
        self.table = table
        self.settings = settings
        self.verified: set[int] = set()
        self.repaired = 0
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        # A partition (re)assigned was restored again: check it again.
        self.verified.clear()

    async def ensure(self, partition: int) -> int:
        """Check ``partition`` once per assignment; return how many keys were repaired."""
        if partition in self.verified:
            return 0
        topic = self.table.changelog_topic.get_topic_name()
        try:
            tail = await read_tail(self.settings, topic, partition)
        except Exception as exc:  # the check is a safety net: never stop the stage for it
            log.warning("could not check the restore of %s[%d]: %s", topic, partition, exc)
            self.verified.add(partition)
            return 0
        store = self.table.data
        fixed = 0
        for key, raw in tail.items():
            value = None if raw is None else orjson.loads(raw)
            if store.get(key) != value:
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
                fixed += 1
        self.verified.add(partition)
        if fixed:
            self.repaired += fixed
            log.warning(
                "restore of %s[%d] stopped short of the changelog's end (a reported end "
                "offset too low): %d key(s) brought up to date from the changelog",
                topic,
                partition,
                fixed,
            )
        return fixed
