"""Throughput and delay of apiwatch workers on the embedded broker, beside the ceiling.

What it measures (prints numbers; asserts nothing):

1. ceiling: a plain aiokafka consume-and-decode loop (``getmany`` + ``orjson.loads``)
   over the same messages, group-less, from the start of the topic;
2. sustained: ``apiwatch worker`` (ingest + detect, one process) draining a backlog of
   N realistic RUM events (~440 bytes), from its first ingested event to 90% of them,
   read off the worker's own /metrics;
3. scale-out: the same backlog drained by two worker processes with one app id
   (one consumer group; the partitions split between them), beside one worker;
4. delay: the same worker fed at a fixed moderate rate with current timestamps; the
   delay from each record's broker timestamp to its processing, p50/p99, from the
   worker's ``apiwatch_processing_delay_seconds`` histogram.

Run: ``.venv/bin/python benchmarks/throughput.py [--events 2000000] [--rate 5000]``
(``make bench``). Medians of ``--repeat`` runs for the ceiling and sustained figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apiwatch.models.simulation import Scenario, Simulator
from apiwatch.settings import Settings, load_settings
from apiwatch.streams.broker import EmbeddedBroker
from apiwatch.streams.kafka import ensure_topics, make_consumer, make_producer, topic_specs
from tests.kafka_helpers import WorkerProcess, assign_all

SCENARIO = Scenario.model_validate(
    {
        "seed": 11,
        "duration_s": 86_400,
        "clients": 5000,
        "services": [
            {
                "name": f"svc{i}",
                "rate_rps": 200,
                "routes": [
                    {"method": "GET", "route": "/users/{id}", "weight": 4},
                    {"method": "GET", "route": "/orders", "weight": 2, "latency_ms": 140},
                    {"method": "POST", "route": "/orders/{id}/items", "weight": 1},
                    {"method": "GET", "route": "/search", "weight": 2, "latency_ms": 200},
                ],
            }
            for i in range(5)
        ],
    }
)


def make_messages(n: int, start_ms: int) -> list[tuple[bytes, bytes]]:
    sim = Simulator(SCENARIO, start_ms)
    out: list[tuple[bytes, bytes]] = []
    t = 0
    while len(out) < n:
        rum, _ = sim.generate(t, t + 10_000)
        out.extend((e["service"].encode(), orjson.dumps(e)) for e in rum)
        t += 10_000
    return out[:n]


def settings_for(bootstrap: str, partitions: int) -> Settings:
    u = uuid.uuid4().hex[:8]
    topics = {
        k: f"bench{u}.{k}" for k in ("rum", "synthetic", "otlp", "deadletter", "buckets", "alerts")
    }
    return load_settings(
        overrides={
            "kafka": {"bootstrap_servers": bootstrap},
            "topics": {**topics, "partitions": partitions},
            "ingest": {"group_id": f"bench{u}-ingest"},
            "app": {"app_id": f"bench{u}"},
        }
    )


async def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> float:
    # Round-robin over partitions (not by key): every worker of a group gets an
    # equal share of the backlog, so 1 vs 2 workers compares like with like.
    producer = make_producer(settings.kafka, linger_ms=20, acks=1)
    await producer.start()
    partitions = settings.topics.partitions
    t0 = time.perf_counter()
    try:
        for i, (key, value) in enumerate(messages):
            await producer.send(settings.topics.rum, value, key=key, partition=i % partitions)
        await producer.flush()
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - t0)


async def ceiling(settings: Settings, n: int) -> float:
    consumer = make_consumer(settings.kafka, group_id=None, max_poll_records=20_000)
    await consumer.start()
    try:
        await assign_all(consumer, settings.topics.rum)
        seen = 0
        t0 = time.perf_counter()
        while seen < n:
            for records in (await consumer.getmany(timeout_ms=200, max_records=20_000)).values():
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


def scrape(port: int) -> dict[str, float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiwatch_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def events_in(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("apiwatch_events_in_total"))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sustained(
    settings: Settings, n: int, tmp: Path, workers: int = 1, broker_pid: int | None = None
) -> tuple[float, str]:
    """Events/s of ``workers`` processes with one app id draining a backlog of ``n``.

    The window opens when every worker has ingested something (so it excludes
    the group join and the rebalance that hands the second worker its share)
    and closes when 90% of the backlog is in, before the tail where one worker
    may have run out of partitions while another still drains. Also returns the
    cores each worker and the broker used over the window: on 2 cores, two workers
    and the broker share them, which caps the scaling.
    """
    procs = [
        WorkerProcess(settings, tmp / uuid.uuid4().hex[:6], "ingest", "detect").start()
        for _ in range(workers)
    ]
    try:
        for w in procs:
            w.wait_healthy(90)
        first_t: float | None = None
        first_n = 0.0
        cpu0: list[float] = []
        broker0 = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = [events_in(scrape(w.port)) for w in procs]
            now = time.perf_counter()
            got = sum(counts)
            if first_t is None and all(c > 0 for c in counts):
                first_t, first_n = now, got
                cpu0 = [cpu_seconds(w.proc.pid if w.proc else None) for w in procs]
                broker0 = cpu_seconds(broker_pid)
            if first_t is not None and got >= 0.9 * n:
                if got - first_n < 0.3 * n:
                    raise RuntimeError(
                        f"only {got - first_n:,.0f} events fell in the measured window: "
                        "raise --events so the group join is a small part of the run"
                    )
                span = max(1e-9, now - first_t)
                cores = [
                    (cpu_seconds(w.proc.pid if w.proc else None) - c0) / span
                    for w, c0 in zip(procs, cpu0, strict=True)
                ]
                used = ", ".join(f"{c:.2f}" for c in cores)
                broker = (cpu_seconds(broker_pid) - broker0) / span
                return (got - first_n) / span, f"cores: worker(s) {used}, broker {broker:.2f}"
            # Not faster: every scrape costs the workers and this process CPU time.
            time.sleep(0.25)
        total = sum(events_in(scrape(w.port)) for w in procs)
        raise RuntimeError(f"{workers} worker(s) ingested only {total:.0f} of {n}")
    finally:
        for w in procs:
            w.stop()


def quantile_from_histogram(m: dict[str, float], q: float) -> float:
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), v)
        for k, v in m.items()
        if k.startswith("apiwatch_processing_delay_seconds_bucket")
        and 'stage="ingest"' in k
        and 'le="+Inf"' not in k
    )
    total = next(
        (v for k, v in m.items() if k.startswith("apiwatch_processing_delay_seconds_count")), 0.0
    )
    if not total:
        return float("nan")
    for le, count in buckets:
        if count >= q * total:
            return le
    return float("inf")


async def paced(settings: Settings, rate: int, seconds: float) -> None:
    sim = Simulator(SCENARIO, int(time.time() * 1000))
    producer = make_producer(settings.kafka, linger_ms=2, acks=1)
    await producer.start()
    try:
        t0 = time.perf_counter()
        sent = 0
        while time.perf_counter() - t0 < seconds:
            due = int((time.perf_counter() - t0) * rate)
            now_ms = int(time.time() * 1000)
            while sent < due:
                rum, _ = sim.generate(0, 1000)
                for e in rum[: due - sent]:
                    e["timestamp"] = now_ms
                    await producer.send(
                        settings.topics.rum, orjson.dumps(e), key=e["service"].encode()
                    )
                    sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()


def delay(settings: Settings, rate: int, seconds: float, tmp: Path) -> tuple[float, float, float]:
    with WorkerProcess(settings, tmp / uuid.uuid4().hex[:6], "ingest", "detect") as w:
        w.wait_healthy(90)
        # Wait until the ingest consumer owns its partitions (Tansu's first join stalls).
        asyncio.run(paced(settings, 50, 8))
        before = scrape(w.port)
        asyncio.run(paced(settings, rate, seconds))
        time.sleep(2)
        after = scrape(w.port)
        diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        return (
            quantile_from_histogram(diff, 0.5),
            quantile_from_histogram(diff, 0.99),
            events_in(diff) / seconds,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5_000, help="events/s for the delay run")
    ap.add_argument("--delay-seconds", type=float, default=20.0)
    args = ap.parse_args()

    print(f"generating {args.events:,} RUM events ...", flush=True)
    messages = make_messages(args.events, int(time.time() * 1000) - 86_400_000)
    size = statistics.mean(len(v) for _, v in messages[:10_000])
    print(f"mean message size {size:.0f} bytes")
    ceilings: list[float] = []
    rates: dict[int, list[float]] = {1: [], 2: []}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for i in range(args.repeat):
            for workers in (1, 2):
                s = settings_for(broker.bootstrap_servers, args.partitions)
                asyncio.run(ensure_topics(s.kafka, topic_specs(s)))
                prate = asyncio.run(produce(s, messages))
                line = f"run {i + 1}, {workers} worker(s): produced at {prate:,.0f}/s; "
                if workers == 1:
                    c = asyncio.run(ceiling(s, args.events))
                    ceilings.append(c)
                    line += f"ceiling (aiokafka + orjson) {c:,.0f}/s; "
                r, cores = sustained(s, args.events, tmp, workers, broker.pid)
                rates[workers].append(r)
                print(f"{line}ingest+detect {r:,.0f}/s ({cores})", flush=True)
        s = settings_for(broker.bootstrap_servers, args.partitions)
        asyncio.run(ensure_topics(s.kafka, topic_specs(s)))
        p50, p99, achieved = delay(s, args.rate, args.delay_seconds, tmp)
    c = statistics.median(ceilings)
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    print()
    print(
        f"ceiling, plain aiokafka consume + orjson decode : {c:>10,.0f} events/s (median of {args.repeat})"
    )
    print(
        f"apiwatch worker, ingest + detect, one process   : {r1:>10,.0f} events/s (median of {args.repeat})"
    )
    print(f"ratio one worker / ceiling                       : {r1 / c:>10.2f}")
    print(
        f"apiwatch, two worker processes, one app id      : {r2:>10,.0f} events/s (median of {args.repeat})"
    )
    print(f"scaling, two workers / one worker                : {r2 / r1:>10.2f}x")
    print(
        f"delay at {args.rate:,} events/s (achieved {achieved:,.0f}/s): "
        f"p50 <= {p50 * 1000:.0f} ms, p99 <= {p99 * 1000:.0f} ms (histogram bucket bounds)"
    )


if __name__ == "__main__":
    main()
