"""Overload: a worker fed at twice the rate it consumes falls behind, says so, and catches up.

One worker (``ingest`` + ``detect``, idle flushing on as in production). Its
capacity is measured first: a backlog of ``PROBE_EVENTS`` produced at once and
drained while ``/metrics`` is sampled. Then RUM events are produced at twice that
rate, and never slower than twice what the worker has consumed so far in the run,
until ``OVERLOAD_S`` seconds' worth of capacity is in flight. The worker must fall
behind (the lag gauge ``apiwatch_consumer_lag`` rises, as seen in ``/metrics``),
keep its resident memory bounded, stay alive and healthy, then catch up: lag back
to 0, every event counted, and per series the events in the bucket summaries equal
to the events produced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from apiwatch.models.buckets import BucketSummary, DetectMessage, rum_series_key
from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_producer
from tests.kafka_helpers import WorkerProcess, eventually
from tests.reliability.harness import (
    create_topics,
    health,
    kill_leftovers,
    metrics,
    processed,
    read_topic,
    rss_kb,
    run_settings,
    start,
    stop,
    total,
    worker,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SERVICES = 8
ROUTES = ("/items/{id}", "/cart")
#: Event time between consecutive events: 1M events span 33 minutes, all in the past.
STEP_MS = 2
PROBE_EVENTS = 100_000
OVERLOAD_S = 3.0
MAX_OVERLOAD_EVENTS = 500_000
TICK_S = 0.1


class Events:
    """RUM events with rising event time, keyed by service, counted per series."""

    TEMPLATE = (
        '{"timestamp":%d,"service":"svc%d","method":"GET","path":"%s","route":"%s",'
        '"status":%d,"duration_ms":%d.5,"client_ip":"10.0.%d.%d"}'
    )

    def __init__(self, start_ms: int, partitions: int) -> None:
        self.next_ms = start_ms
        self.i = 0
        parts = list(range(partitions))
        keys = [f"svc{s}".encode() for s in range(SERVICES)]
        self.keys = keys
        self.partition = [DefaultPartitioner()(k, parts, parts) for k in keys]
        self.expected: Counter[str] = Counter()

    def take(self, n: int) -> list[tuple[int, bytes, bytes]]:
        out = []
        for _ in range(n):
            i, s = self.i, self.i % SERVICES
            route = ROUTES[(i // SERVICES) % len(ROUTES)]
            path = route.replace("{id}", str(i % 997))
            status = 503 if i % 101 == 0 else 200
            value = self.TEMPLATE % (self.next_ms, s, path, route, status, 20 + i % 60, s, i % 200)
            out.append((self.partition[s], self.keys[s], value.encode()))
            self.expected[rum_series_key("production", f"svc{s}", "GET", route)] += 1
            self.i += 1
            self.next_ms += STEP_MS
        return out


Built = list[tuple[int, Any, int]]  # (partition, closed batch, records in it)


def build_batches(producer: AIOKafkaProducer, msgs: list[tuple[int, bytes, bytes]]) -> Built:
    """Whole record batches per partition, built ahead so that sending them is cheap."""
    out: Built = []
    open_: dict[int, tuple[Any, int]] = {}
    for partition, key, value in msgs:
        batch, n = open_.get(partition) or (producer.create_batch(), 0)
        if batch.append(key=key, value=value, timestamp=None) is None:
            batch.close()
            out.append((partition, batch, n))
            batch, n = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)
        open_[partition] = (batch, n + 1)
    for partition, (batch, n) in open_.items():
        batch.close()
        out.append((partition, batch, n))
    return out


async def send_batches(
    producer: AIOKafkaProducer, topic: str, built: Built
) -> list[asyncio.Future[Any]]:
    """Queue built batches; return their delivery futures."""
    return [await producer.send_batch(b, topic, partition=p) for p, b, _ in built]


class Watch:
    """Samples of one worker: events in, reported lag, resident memory."""

    def __init__(self, w: WorkerProcess, s: Settings) -> None:
        self.w, self.s = w, s
        self.samples: list[dict[str, float]] = []
        self.t0 = time.monotonic()

    async def sample(self, produced: int) -> dict[str, float]:
        assert self.w.alive and self.w.proc, f"worker died:\n{self.w.log_tail()}"
        m = await metrics(self.w)
        t = self.s.topics
        row = {
            "t": round(time.monotonic() - self.t0, 2),
            "produced": produced,
            "events": total(m, "apiwatch_events_in_total", f'topic="{t.rum}"'),
            "lag": total(m, "apiwatch_consumer_lag", f'topic="{t.rum}:ingest"'),
            "rss_kb": rss_kb(self.w.proc.pid),
            "dead_letters": total(m, "apiwatch_dead_letters_total"),
        }
        self.samples.append(row)
        return row


def capacity_of(samples: list[dict[str, float]], n: int) -> float:
    """Events/s while a backlog of ``n`` was drained (samples strictly inside the drain)."""
    inside = [r for r in samples if 0 < r["events"] < n]
    if len(inside) >= 2 and inside[-1]["t"] > inside[0]["t"]:
        a, b = inside[0], inside[-1]
        return (b["events"] - a["events"]) / (b["t"] - a["t"])
    done = next(r for r in samples if r["events"] >= n)
    return n / max(done["t"] - samples[0]["t"], TICK_S)


async def overload_run(s: Settings, d: Path) -> dict[str, Any]:
    await create_topics(s)
    t = s.topics
    w = worker(s, d)
    await start(w)
    gen = Events(int(time.time() * 1000) - 45 * 60_000, t.partitions)
    producer = make_producer(s.kafka, linger_ms=20)
    await producer.start()
    watch = Watch(w, s)
    try:
        # 1. Capacity: a backlog produced at once, drained while sampled.
        await watch.sample(0)
        probe_batches = build_batches(producer, gen.take(PROBE_EVENTS))
        await asyncio.gather(*await send_batches(producer, t.rum, probe_batches))

        async def probe_drained() -> bool:
            return (await watch.sample(PROBE_EVENTS))["events"] >= PROBE_EVENTS

        await eventually(
            "probe backlog drained",
            probe_drained,
            120,
            interval_s=TICK_S,
            context=lambda: str(watch.samples[-1]),
        )
        probe = list(watch.samples)
        capacity = capacity_of(probe, PROBE_EVENTS)
        base_rss = probe[-1]["rss_kb"]

        # 2. Overload: twice the capacity, and never less than twice what was consumed.
        # The batches are built beforehand and queued without waiting for each tick's
        # acknowledgements: on 2 shared cores a Python producer building them on the
        # fly is slower than the worker, and one waiting for acks is bound by round trips.
        n_over = int(min(MAX_OVERLOAD_EVENTS, 2 * capacity * OVERLOAD_S))
        built = build_batches(producer, gen.take(n_over))
        t0, sent, i = time.monotonic(), 0, 0
        first_over = len(watch.samples)
        consumed = 0.0
        in_flight: list[asyncio.Future[Any]] = []
        while i < len(built):
            assert time.monotonic() - t0 < 120, watch.samples[-1]
            want = max(2 * capacity * (time.monotonic() - t0 + TICK_S), 2 * consumed)
            j = i
            while j < len(built) and sent < want:
                sent += built[j][2]
                j += 1
            in_flight += await send_batches(producer, t.rum, built[i:j])
            i = j
            row = await watch.sample(PROBE_EVENTS + sent)
            consumed = row["events"] - PROBE_EVENTS
            await asyncio.sleep(TICK_S)  # the feed's clock (its rate), not a wait
        await asyncio.gather(*in_flight)
        produced_s = time.monotonic() - t0
        row = await watch.sample(PROBE_EVENTS + sent)
        overload = watch.samples[first_over:]
        consumed_during = row["events"] - PROBE_EVENTS

        # 3. Catch up: every event in, lag 0, detection judged everything ingest sent.
        n_all = PROBE_EVENTS + n_over
        last: list[tuple[float, float, float]] = []

        async def caught_up() -> bool:
            # Everything in, no lag, detection judged all ingest sent, and steady
            # across two samples (a count still moving is not caught up).
            row = await watch.sample(n_all)
            now = await processed([w])
            steady = bool(last) and now == last[-1]
            last.append(now)
            return row["events"] >= n_all and row["lag"] == 0 and now[2] >= now[1] and steady

        await eventually(
            "catch-up",
            caught_up,
            180,
            interval_s=0.3,
            context=lambda: str((watch.samples[-1], last[-1:])),
        )
        caught_up_s = time.monotonic() - t0

        # Per series, the events in the summaries (count + late) equal the events produced.
        def counted(records: list[Any]) -> Counter[str]:
            out: Counter[str] = Counter()
            for r in records:
                body = DetectMessage.model_validate_json(b'{"body":' + r.value + b"}").body
                if isinstance(body, BucketSummary):
                    out[body.series] += body.count + body.late
            return out

        buckets = await read_topic(
            s, t.buckets, until=lambda rs: counted(rs) == gen.expected, within_s=90
        )
        h = await health(w)
        return {
            "capacity_eps": round(capacity),
            "overload_events": n_over,
            "produced_eps": round(n_over / produced_s),
            "consumed_eps_during_overload": round(consumed_during / produced_s),
            "feed_to_capacity": round(n_over / produced_s / capacity, 2),
            "feed_to_consumption": round(n_over / max(consumed_during, 1), 2),
            "caught_up_after_s": round(caught_up_s, 1),
            "probe": probe,
            "overload": overload,
            "after": watch.samples[first_over + len(overload) :],
            "base_rss_kb": base_rss,
            "peak_rss_kb": max(r["rss_kb"] for r in watch.samples),
            "expected": dict(gen.expected),
            "counted": dict(counted(buckets)),
            "events_produced": n_all,
            "health": h,
            "alive": w.alive,
            "log": w.log_tail(60),
        }
    finally:
        await producer.stop()
        await stop(w, "TERM")


@pytest.fixture(scope="module")
def overloaded(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    s = run_settings(kafka_bootstrap, "over", ingest={"idle_flush_s": 2.0})
    try:
        out = asyncio.run(overload_run(s, tmp_path_factory.mktemp("overload")))
    finally:
        kill_leftovers()
    figures = {k: v for k, v in out.items() if k not in ("probe", "after", "log", "expected")}
    path = tmp_path_factory.getbasetemp() / "reliability-overload.json"
    path.write_text(json.dumps(figures, default=str))
    print(f"\noverload: {json.dumps({k: v for k, v in figures.items() if 'eps' in k})}")
    yield out


def test_lag_grows_and_is_reported_under_twice_the_capacity(overloaded: dict[str, Any]) -> None:
    n = overloaded["overload_events"]
    # The backlog grew: fed faster than the worker consumed meanwhile (the feed aims
    # at twice; the ratio reached depends on how the 2 cores are shared, so it is a
    # figure in reliability-overload.json, not a pass mark)...
    assert overloaded["feed_to_consumption"] > 1.2, overloaded["feed_to_consumption"]
    # ... and /metrics said so: the reported lag rose well above what it was early on
    # (it is the lag as of the worker's last fetch, so it trails the backlog a little).
    lags = [r["lag"] for r in overloaded["overload"] + overloaded["after"]]
    early = max(lags[: max(1, len(overloaded["overload"]) // 4)])
    assert max(lags) > early and max(lags) >= n / 10, lags


def test_worker_catches_up_and_counts_every_event(overloaded: dict[str, Any]) -> None:
    assert overloaded["alive"], overloaded["log"]
    assert overloaded["health"] and overloaded["health"]["ok"], overloaded["health"]
    last = overloaded["after"][-1]
    assert last["lag"] == 0 and last["events"] == overloaded["events_produced"], last
    assert last["dead_letters"] == 0
    assert overloaded["counted"] == overloaded["expected"]


def test_memory_stays_bounded_under_overload(overloaded: dict[str, Any]) -> None:
    # Fetches are capped (64 MB per fetch, 20,000 records per batch): memory must not
    # grow with the backlog (hundreds of MB of input), only with what is in flight.
    growth_mb = (overloaded["peak_rss_kb"] - overloaded["base_rss_kb"]) / 1024
    assert growth_mb < 300, (overloaded["base_rss_kb"], overloaded["peak_rss_kb"])
