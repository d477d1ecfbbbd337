"""The access-pattern extension of the ingest stage: raw RUM in, per-client window records out.

It rides the batched aiokafka path (:class:`~apiwatch.streams.ingest.IngestStage`
calls it with every valid RUM batch), so per-event traffic never touches
Faust. Per source partition an :class:`~apiwatch.models.access.fold.AccessFolder`
keeps the open micro-windows; when they close, their records are packed into a
few messages for the access topic: client records grouped by the partition
Kafka's default partitioner gives each client key, each message keyed by one
of its clients, so every record of a client always lands on the same
partition (the one its table state lives on) while the access-detect agent
pays its per-message cost once per pack. Login-route records go the same way,
grouped by route.

Offsets: :meth:`AccessExtension.committable` holds raw commits back to the
first event of the oldest open window; the ingest stage commits only once the
records drained before are acknowledged.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from aiokafka.admin import NewTopic
from aiokafka.partitioner import murmur2

from apiwatch.models.access.allowlist import AllowList
from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.fold import AccessFolder, RecordDict
from apiwatch.models.events import RumEvent
from apiwatch.settings import Settings

log = logging.getLogger(__name__)

Record = tuple[str, bytes, bytes]


def kafka_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``.

    >>> kafka_partition("production|ip|10.0.0.1", 4) in range(4)
    True
    """
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def access_topic_specs(settings: Settings) -> list[NewTopic]:
    """The access topic, created with explicit configs like the others (DESIGN.md)."""
    t = settings.topics
    configs = {"retention.ms": str(t.retention_ms), "cleanup.policy": "delete"}
    return [
        NewTopic(settings.access.topic, t.partitions, t.replication_factor, topic_configs=configs)
    ]


def pack(
    kind: str,
    items: Iterable[tuple[str, bytes]],
    partitions: int,
    max_bytes: int,
) -> list[tuple[bytes, bytes]]:
    """Group encoded records by target partition into messages of at most ``max_bytes``.

    Returns (key, value) pairs; the key is a record key that maps to the group's
    partition, so the message lands where each of its records belongs.

    >>> msgs = pack("clients", [("a", b"{}"), ("b", b"{}")], 1, 1000)
    >>> msgs
    [(b'a', b'{"type":"clients","records":[{},{}]}')]
    """
    groups: dict[int, list[tuple[str, bytes]]] = {}
    for key, body in items:
        groups.setdefault(kafka_partition(key, partitions), []).append((key, body))
    head = b'{"type":"' + kind.encode() + b'","records":['
    out: list[tuple[bytes, bytes]] = []
    for part in sorted(groups):
        chunk: list[bytes] = []
        size = len(head) + 2
        first = ""
        for key, body in groups[part]:
            if chunk and size + len(body) + 1 > max_bytes:
                out.append((first.encode(), head + b",".join(chunk) + b"]}"))
                chunk, size = [], len(head) + 2
            if not chunk:
                first = key
            chunk.append(body)
            size += len(body) + 1
        if chunk:
            out.append((first.encode(), head + b",".join(chunk) + b"]}"))
    return out


#: Allocations between young-generation collections in an access process (CPython: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer garbage collections in a process that folds access windows.

    Each open micro-window holds a few small containers per client until it closes:
    with CPython's default thresholds they trigger collections of the older
    generations every few batches, each one walking the whole heap (the app, the
    modules, the open windows). Everything alive at start is frozen out of
    collection and the young generation is collected every
    :data:`GC_YOUNG_THRESHOLD` allocations. Reference counting still frees every
    container without a cycle at once; the fold makes none.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


@dataclass
class AccessStats:
    events: int = 0
    client_records: int = 0
    login_records: int = 0
    messages: int = 0


class AccessExtension:
    """:class:`~apiwatch.streams.ingest.IngestExtension` folding RUM into access records."""

    name = "access"

    def __init__(
        self, settings: Settings, partitions: int | None = None, *, gc_tuning: bool = True
    ) -> None:
        """``gc_tuning`` applies :func:`tune_gc` to the process (the access role's default)."""
        self.cfg: AccessConfig = settings.access
        self.topic = self.cfg.topic
        self.source_topic = settings.topics.rum
        self.partitions = partitions or settings.topics.partitions
        self.allow = AllowList(self.cfg.allow)
        self.folders: dict[int, AccessFolder] = {}
        self.last_event_wall: dict[int, float] = {}
        self.last_watermark: dict[int, int] = {}
        self.stats = AccessStats()
        if gc_tuning:
            tune_gc()

    def on_batch(
        self, partition: int, events: list[RumEvent], offsets: np.ndarray, now: float
    ) -> None:
        folder = self.folders.get(partition)
        if folder is None:
            origin = f"{self.source_topic}:{partition}"  # the ids ingest gives id-less events
            folder = self.folders[partition] = AccessFolder(self.cfg, self.allow, origin)
        folder.fold(events, offsets.tolist())
        self.last_event_wall[partition] = now
        self.last_watermark[partition] = folder.watermark_ms or 0
        self.stats.events += len(events)

    def drain(self, now: float) -> list[Record]:
        clients: list[RecordDict] = []
        logins: list[RecordDict] = []
        idle_s = self.cfg.fold.idle_flush_s
        for p, folder in self.folders.items():
            # A quiet partition still moves on in event time, at wall-clock pace,
            # so its last windows close (as the ingest stage does for buckets).
            quiet = now - self.last_event_wall.get(p, now)
            if quiet > idle_s:
                folder.advance(self.last_watermark.get(p, 0) + int(quiet * 1000))
            c, lg = folder.close_ready()
            clients.extend(c)
            logins.extend(lg)
        return self._records(clients, logins)

    def _records(self, clients: Sequence[RecordDict], logins: Sequence[RecordDict]) -> list[Record]:
        max_bytes = self.cfg.fold.max_message_bytes
        out = [
            (self.topic, k, v)
            for k, v in pack(
                "clients",
                ((c["client"], orjson.dumps(c)) for c in clients),
                self.partitions,
                max_bytes,
            )
        ]
        out += [
            (self.topic, k, v)
            for k, v in pack(
                "login",
                ((w["route"], orjson.dumps(w)) for w in logins),
                self.partitions,
                max_bytes,
            )
        ]
        self.stats.client_records += len(clients)
        self.stats.login_records += len(logins)
        self.stats.messages += len(out)
        return out

    def committable(self, partition: int) -> int | None:
        folder = self.folders.get(partition)
        return folder.committable() if folder is not None else None

    def forget_partition(self, partition: int) -> None:
        self.folders.pop(partition, None)
        self.last_event_wall.pop(partition, None)
        self.last_watermark.pop(partition, None)
