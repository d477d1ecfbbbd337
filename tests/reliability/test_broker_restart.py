"""A broker that stops for a while and comes back empty (the embedded one keeps its topics in
memory): the running worker says so while it is down (health 503), logs what was lost when it
is back, and exits with code 75 (its Faust stages cannot recover in process); restarted, as a
supervisor would, it recreates its topics and processes new events again, alerts included.

The restarted worker must not hang in Faust's changelog recovery: the old worker's producers
re-send buffered writes to the restarted broker before it exits, and Tansu acknowledges them
without a topic, so the changelog created again reports an end offset no fetch reaches. The
restart finds and replaces such topics before Faust starts (BrokerWatch.claim; the repair
itself is tested in tests/streams/test_broker_watch.py, since whether a write slips in before
the exit depends on timing).

The test owns its broker (on its own port) so that stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from apiwatch.models.alerts import AlertEvent
from apiwatch.streams.broker import EmbeddedBroker, free_port
from apiwatch.streams.worker import EXIT_BROKER_LOST
from tests.kafka_helpers import WorkerProcess, eventually
from tests.reliability.harness import (
    create_topics,
    metrics,
    produce,
    read_topic,
    run_settings,
    scenario_input,
    total,
    worker,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: The broker goes away after this much event time (after the warm-up, before the incidents).
SPLIT_S = 400


async def until(
    what: str, check: Any, w: WorkerProcess, within_s: float = 45.0, alive: bool = True
) -> Any:
    """Wait for ``check`` (async); fail early, with the log tail, if the worker died."""

    def guard() -> None:
        if alive:
            assert w.alive, f"worker died while waiting for {what}:\n{w.log_tail(60)}"

    return await eventually(
        what, check, within_s, interval_s=0.3, context=lambda: w.log_tail(60), guard=guard
    )


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        return {d["topic"]: len(d["partitions"]) for d in described if not d["error_code"]}
    finally:
        await admin.close()


async def test_worker_recreates_its_topics_after_a_broker_restart_and_carries_on(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    # Short idle flush: the last buckets close without waiting for later event time.
    settings = run_settings(broker.bootstrap_servers, "brst", ingest={"idle_flush_s": 1})
    t = settings.topics
    inp = scenario_input()
    first, rest = inp.part(0, SPLIT_S), inp.part(SPLIT_S, 10**9)
    w = worker(settings, tmp_path)
    try:
        await create_topics(settings)
        await asyncio.to_thread(w.start)
        await asyncio.to_thread(w.wait_healthy, 60)
        await produce(settings, first)

        async def events_in() -> float:
            return total(await metrics(w), "apiwatch_events_in_total")

        async def broker_state() -> str | None:
            h = await asyncio.to_thread(w.health)
            return ((h or {}).get("stages", {}).get("broker") or {}).get("state")

        await until("first part ingested", lambda: _at_least(events_in, len(first)), w)
        await until("broker watch started", _equals(broker_state, "running"), w)

        # Down: the worker stays up and says so (health 503, broker unreachable).
        broker.stop()
        await until("broker reported unreachable", _equals(broker_state, "unreachable"), w)
        assert "stopped answering" in w.log_tail(400)

        # Back, empty, on the same port: the loss is logged, and the worker exits (its Faust
        # stages cannot recover in process) for its supervisor to restart.
        broker.start()
        code = await until("worker exit", lambda: _exited(w), w, alive=False)
        assert code == EXIT_BROKER_LOST, w.log_tail(60)
        log = w.log_tail(4000)
        assert "came back without its topics" in log, log
        assert f"{t.rum}" in log and "unread events" in log
        assert f"{settings.app.app_id}-monitors-changelog" in log and "warm-up" in log
        assert f"exiting with code {EXIT_BROKER_LOST}" in log
        assert "Traceback" not in log.split("came back without its topics")[1]

        # The supervisor's restart: same settings and state dir. It recreates the topics
        # (those clients' reconnects made with the broker's defaults are replaced).
        w = worker(settings, tmp_path)
        await asyncio.to_thread(w.start)
        await asyncio.to_thread(w.wait_healthy, 60)
        counts = await partition_counts(
            broker.bootstrap_servers, [t.rum, t.synthetic, t.buckets, t.alerts_pending]
        )
        assert counts == {t.rum: 4, t.synthetic: 4, t.buckets: 4, t.alerts_pending: 1}

        # New events flow again: ingested, summarised, judged, and an incident alerts.
        before = await events_in()
        await produce(settings, rest)
        await until("rest ingested", lambda: _at_least(events_in, before + len(rest)), w, 60)
        buckets = await read_topic(settings, t.buckets, until=lambda r: len(r) > 0)
        assert buckets, "no bucket summary reached detection after the restart"

        def fired(records: list[Any]) -> bool:
            return any(
                AlertEvent.model_validate_json(r.value).transition == "firing" for r in records
            )

        alerts = await read_topic(settings, t.alerts, until=fired, within_s=60)
        assert fired(alerts), f"no alert after the restart:\n{w.log_tail(60)}"
        assert w.alive
    finally:
        await asyncio.to_thread(w.stop, "TERM")
        broker.stop()


async def _exited(w: WorkerProcess) -> int | None:
    return None if w.proc is None else w.proc.poll()


async def _at_least(get: Any, n: float) -> bool:
    return bool(await get() >= n)


def _equals(get: Any, value: Any) -> Any:
    async def check() -> bool:
        return bool(await get() == value)

    return check
