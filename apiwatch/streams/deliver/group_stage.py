"""Group, inhibit, silence, dedup: turn routed alerts into notifications.

Groups live in memory on the worker that owns their routed partition. A group
is flushed when due (``group_wait``, then every ``group_interval``); the
snapshot loses muted alerts (inhibition, silences, both :class:`Muter`), then
the dedup rules decide whether the receiver hears about it. The routed
records behind a flush are committed only once its notification is settled
(sent, queued for retry or dead-lettered): a crash before that replays them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from apiwatch.models.alerts import AlertEvent, AlertStatus
from apiwatch.models.delivery.dedup import NotifyRecord, needs_notify
from apiwatch.models.delivery.grouping import AggregationGroup
from apiwatch.models.delivery.inhibit import Muter
from apiwatch.models.delivery.notification import Notification, RoutedAlert, notification_id
from apiwatch.models.delivery.routing import Route, index_routes
from apiwatch.settings import Settings
from apiwatch.streams.deliver.offsets import OffsetTracker, TopicPartition
from apiwatch.streams.deliver.records import track_and_decode
from apiwatch.streams.deliver.sender import Sender

log = logging.getLogger(__name__)

Position = tuple[TopicPartition, int]


class GroupStage:
    """Aggregation groups of the routed partitions this worker owns."""

    def __init__(
        self,
        settings: Settings,
        tree: Route,
        sender: Sender,
        muters: Sequence[Muter],
        tracker: OffsetTracker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._receivers = settings.delivery.receivers
        self._routes = index_routes(tree)
        self._root = tree
        self._sender = sender
        self._muters = list(muters)
        self._tracker = tracker
        self._clock = clock
        self.groups: dict[str, AggregationGroup] = {}
        self._positions: dict[str, list[Position]] = {}
        self._partition: dict[str, TopicPartition] = {}
        self._records: dict[str, NotifyRecord] = {}

    def handle(self, records: Iterable[Any]) -> None:
        now = self._clock()
        for record in records:
            routed = track_and_decode(RoutedAlert, record, self._tracker)
            if routed is None:
                continue
            tp = (record.topic, record.partition)
            self._insert(routed, now)
            self._positions.setdefault(routed.group_key, []).append((tp, record.offset))
            self._partition[routed.group_key] = tp

    def _insert(self, routed: RoutedAlert, now: float) -> None:
        group = self.groups.get(routed.group_key)
        if group is None:
            route = self._routes.get(routed.route_id)
            if route is None:
                # Written under an older configuration; the root's receiver is the
                # default route, so the alert is still delivered somewhere.
                log.warning("route %s no longer exists; using the root route", routed.route_id)
                route = self._root
            group = AggregationGroup(routed.group_key, route, routed.group_labels, now)
            self.groups[routed.group_key] = group
        group.insert(routed.event, now)

    def tick(self) -> None:
        """Flush every due group."""
        now = self._clock()
        for group in [g for g in self.groups.values() if g.due(now)]:
            self._flush(group, now)

    def _flush(self, group: AggregationGroup, now: float) -> None:
        snapshot = group.flush(now)
        wall = datetime.now(tz=UTC)
        visible = [e for e in snapshot if not any(m.mutes(e.data, wall) for m in self._muters)]
        notification = self._decide(group, visible, now, wall)
        group.forget_resolved(snapshot)
        if group.empty:
            del self.groups[group.key]
            self._records.pop(group.key, None)
            self._partition.pop(group.key, None)
        taken = self._positions.pop(group.key, [])

        def release() -> None:
            for tp, offset in taken:
                self._tracker.done(tp, offset)

        if notification is None:
            release()
        else:
            self._sender.submit(notification, release)

    def _decide(
        self, group: AggregationGroup, visible: list[AlertEvent], now: float, wall: datetime
    ) -> Notification | None:
        name = group.route.receiver
        if name is None:
            return None
        receiver = self._receivers.get(name)
        send_resolved = receiver.send_resolved if receiver is not None else True
        firing = {e.subject for e in visible if e.data.status is AlertStatus.FIRING}
        resolved = {e.subject for e in visible if e.data.status is AlertStatus.RESOLVED}
        last = self._records.get(group.key)
        if not needs_notify(
            last,
            firing=firing,
            resolved=resolved,
            now=now,
            repeat_interval_s=group.route.repeat_interval_s,
            send_resolved=send_resolved,
        ):
            return None
        alerts = [e for e in visible if e.data.status is AlertStatus.FIRING or send_resolved]
        ids = frozenset(e.id for e in alerts)
        repeat = last.repeat + 1 if last is not None and last.event_ids == ids else 0
        self._records[group.key] = NotifyRecord(
            frozenset(firing), frozenset(resolved), now, ids, repeat
        )
        if not alerts:
            return None
        return Notification(
            id=notification_id(sorted(ids), repeat),
            receiver=name,
            group_key=group.key,
            group_labels=group.labels,
            alerts=alerts,
            created_at=wall,
        )

    def revoke(self, tps: set[TopicPartition]) -> None:
        """Forget groups of partitions this worker lost; their new owner replays them."""
        for key in [k for k, tp in self._partition.items() if tp in tps]:
            self.groups.pop(key, None)
            self._positions.pop(key, None)
            self._records.pop(key, None)
            self._partition.pop(key, None)
