"""Access-detect stage (Faust): per-client window records in, access alerts out.

The access topic carries packs of per-client (and per-login-route) records
from the ingest extension (:mod:`apiwatch.streams.access`), every record of a
client on one partition. Per client, a
:class:`~apiwatch.models.access.tracker.ClientTracker` (sliding windows,
incidents) lives in a changelog-backed table keyed by client, on the
partition of its records, so a restarted or rebalanced worker resumes where it
stopped; login routes get their own table. All the logic is the
:class:`~apiwatch.models.access.engine.AccessEngine`, the same the offline
replay runs; this module only moves bytes and state.

The anomalous-client model is refitted in a background thread on a timer and
swapped in when ready; the agent never waits for a fit. Each model is saved
under the state directory, so a restart starts with the last one.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import faust
from faust.types import EventT, StreamT
from pydantic import ValidationError

from apiwatch.models.access.engine import AccessEngine, Processed
from apiwatch.models.access.features import CONTEXT, FEATURES
from apiwatch.models.access.model import ModelKeeper
from apiwatch.models.access.records import ACCESS_MESSAGE, LoginBatch
from apiwatch.models.deadletter import DeadLetter, Reason
from apiwatch.settings import Settings
from apiwatch.streams.metrics import Health, Metrics

log = logging.getLogger(__name__)

MODEL_FILE = "access-model.pkl"
#: Open incidents swept per agent event: bounded, so a sweep never stalls the stream.
SWEEP_PER_EVENT = 200


class TableStore:
    """:class:`~apiwatch.models.access.engine.StateStore` over a Faust table with raw keys."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> dict[str, Any] | None:
        value = self.table.get(key.encode())
        return value if isinstance(value, dict) else None

    def put(self, key: str, state: dict[str, Any]) -> None:
        self.table[key.encode()] = state


class AccessDetectStage:
    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: Metrics,
        health: Health,
        executor: Executor | None = None,
    ) -> None:
        self.app = app
        self.cfg = settings.access
        self.source = settings.app.source
        self.metrics = metrics
        self.health = health
        t = settings.topics
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.access = app.topic(self.cfg.topic, partitions=t.partitions, **raw)
        self.alerts = app.topic(t.alerts, **raw)
        self.deadletter = app.topic(t.deadletter, **raw)
        schema: Any = faust.Schema(key_serializer="raw", value_serializer="json")
        compact = {"cleanup.policy": "compact"}
        self.clients = app.Table(
            "access_clients", default=None, partitions=t.partitions, schema=schema,
            extra_topic_configs=compact, help="ClientTracker state per client",
        )  # fmt: skip
        self.logins = app.Table(
            "access_logins", default=None, partitions=t.partitions, schema=schema,
            extra_topic_configs=compact, help="LoginRouteTracker state per login route",
        )  # fmt: skip
        model_path = settings.app.state_dir / MODEL_FILE
        self.keeper = ModelKeeper(self.cfg.model, FEATURES, path=model_path, context=CONTEXT)
        if self.cfg.model.enabled and self.keeper.load(model_path):
            log.info("access model loaded from %s", model_path)
        self.engine = AccessEngine(self.cfg, self.keeper)
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="access-refit")
        self.open_keys: dict[int, set[str]] = {}
        self.watermarks: dict[int, int] = {}
        self.processed = 0
        app.agent(self.access, name="apiwatch.access")(self.process)
        if self.cfg.model.enabled:
            app.timer(1.0, on_leader=False)(self.tick)

    async def tick(self) -> None:
        """Swap in a finished refit, and start the next one when due (never waits)."""
        if self.keeper.poll() and self.keeper.model is not None:
            log.info("access model refitted on %d rows", self.keeper.model.rows)
        self.keeper.start_refit(self.executor)

    async def process(self, stream: StreamT[bytes]) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            try:
                await self.handle(event.value, event.message.partition)
            except Exception as exc:  # one poison message must not stop the agent
                msg = event.message
                log.exception("access failed on %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                await self._dead_letter(event, f"access detect failed: {exc!r}")
            self.processed += 1
            self.health.beat("access", processed=self.processed)

    async def handle(self, value: bytes, partition: int) -> None:
        try:
            batch = ACCESS_MESSAGE.validate_json(value)
        except ValidationError as exc:
            raise ValueError(f"not an access record pack: {exc.error_count()} errors") from exc
        if isinstance(batch, LoginBatch):
            done = self.engine.process(batch, TableStore(self.logins))
        else:
            done = self.engine.process(batch, TableStore(self.clients))
        await self._send(done)
        await self._sweep(partition, done)

    async def _sweep(self, partition: int, done: Processed) -> None:
        # Incidents of clients that went quiet resolve here: table writes must happen
        # inside an event of the partition the keys live on, so sweep that partition's.
        open_keys = self.open_keys.setdefault(partition, set())
        for key, is_open in done.open.items():
            (open_keys.add if is_open else open_keys.discard)(key)
        if done.watermark_ms is not None:
            self.watermarks[partition] = max(self.watermarks.get(partition, 0), done.watermark_ms)
        now = self.watermarks.get(partition)
        stale = [k for k in open_keys if k not in done.open][:SWEEP_PER_EVENT]
        if now is None or not stale:
            return
        swept = self.engine.expire(stale, TableStore(self.clients), now)
        for key, is_open in swept.open.items():
            if not is_open:
                open_keys.discard(key)
        await self._send(swept)

    async def _send(self, done: Processed) -> None:
        for em in done.emissions:
            ev = em.event(self.source)
            await self.alerts.send(
                key=em.alert.fingerprint.encode(), value=ev.model_dump_json().encode()
            )
            self.metrics.alerts.labels(em.alert.kind.value, em.transition).inc()
            log.info("alert %s %s: %s", em.transition, em.alert.kind.value, em.alert.summary)

    async def _dead_letter(self, event: EventT[bytes], detail: str) -> None:
        msg = event.message
        letter = DeadLetter.build(
            msg.value if isinstance(msg.value, bytes) else b"",
            reason=Reason.UNSUPPORTED,
            detail=detail,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )
        key = f"{msg.topic}:{msg.partition}:{msg.offset}".encode()
        await self.deadletter.send(key=key, value=letter.model_dump_json().encode())
        self.metrics.dead_letters.labels(Reason.UNSUPPORTED.value).inc()
