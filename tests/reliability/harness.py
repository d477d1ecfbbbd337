"""Shared input, worker runs and read-outs for the fault-injection suite.

Every run of the suite replays ONE scenario (generated once per session) into its
own topics, with its own app id and consumer groups, so runs are independent and
can go concurrently. Idle flushing is switched off (``ingest.idle_flush_s``): a
bucket then closes only when event time passes it, so what a run produces is a
function of the input alone, never of wall-clock pauses (killing a worker is a
pause), and an interrupted run can be compared bucket for bucket with an
uninterrupted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.buckets import BucketSummary, DetectMessage
from apiwatch.models.simulation import Scenario, Simulator, Truth
from apiwatch.settings import Settings, TopicsConfig, load_settings
from apiwatch.streams.kafka import ensure_topics, make_consumer, make_producer, topic_specs
from tests.kafka_helpers import WorkerProcess, assign_all

SCENARIO: dict[str, Any] = {
    "seed": 11,
    "duration_s": 1200,
    "clients": 300,
    "daily_amplitude": 0.0,
    "services": [
        {
            "name": "shop",
            "rate_rps": 16,
            "routes": [
                {"method": "GET", "route": "/products/{id}", "weight": 3, "latency_ms": 50},
                {"method": "GET", "route": "/products", "weight": 1, "latency_ms": 120},
            ],
        },
        {
            "name": "auth",
            "rate_rps": 10,
            "routes": [{"method": "POST", "route": "/login", "latency_ms": 120}],
        },
        {
            "name": "search",
            "rate_rps": 6,
            "routes": [{"method": "GET", "route": "/search", "latency_ms": 150}],
        },
    ],
    "checks": [
        {
            "check_id": "login-flow",
            "name": "Log in",
            "service": "auth",
            "interval_s": 60,
            "steps": [{"name": "log in", "method": "POST", "route": "/login"}],
        }
    ],
    "incidents": [
        {
            "kind": "latency_spike",
            "target": {"service": "shop", "method": "GET", "route": "/products/{id}"},
            "start_s": 600,
            "duration_s": 150,
            "magnitude": 5,
        },
        {
            "kind": "error_surge",
            "target": {"service": "auth", "method": "POST", "route": "/login"},
            "start_s": 870,
            "duration_s": 150,
            "magnitude": 0.3,
        },
        {
            "kind": "synthetic_outage",
            "target": {"check": "login-flow"},
            "start_s": 900,
            "duration_s": 180,
            "magnitude": 0.67,
        },
    ],
}

#: Restart runs stop the worker here: after the 300 s warm-up, before any incident.
RESTART_SPLIT_S = 480
#: Scale-out: two workers share the first part (the latency spike fires and resolves
#: there); one leaves; the survivor alone sees the error surge and the outage.
SCALE_SPLIT_S = 800

Message = tuple[str, bytes, bytes, int]  # (input kind, key, value, event time ms)


@dataclass(frozen=True)
class Input:
    start_ms: int
    messages: list[Message]
    truth: list[Truth]

    def part(self, lo_s: float, hi_s: float) -> list[Message]:
        lo, hi = self.start_ms + lo_s * 1000, self.start_ms + hi_s * 1000
        return [m for m in self.messages if lo <= m[3] < hi]


@functools.cache
def scenario_input() -> Input:
    """The suite's one input, generated once: ~40,000 RUM events and 60 check runs."""
    scenario = Scenario.model_validate(SCENARIO)
    # Over by 5 minutes well before the suite ends: no event is ever in the future.
    start = int(time.time() * 1000) - int(scenario.duration_s * 1000) - 300_000
    sim = Simulator(scenario, start)
    rum, syn = sim.generate(0, int(scenario.duration_s * 1000))
    msgs: list[Message] = [
        ("rum", e["service"].encode(), orjson.dumps(e), int(e["timestamp"])) for e in rum
    ]
    msgs += [
        ("synthetic", r["check_id"].encode(), orjson.dumps(r), int(r["timestamp"])) for r in syn
    ]
    # Stable sort: per key (so per partition), the order is the simulator's.
    msgs.sort(key=lambda m: m[3])
    return Input(start, msgs, sim.truth())


def run_settings(bootstrap: str, tag: str = "r", **overrides: dict[str, Any]) -> Settings:
    """Settings for one run: its own topics, groups and app id."""
    u = f"{tag}{uuid.uuid4().hex[:6]}"
    base: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "session_timeout_s": 6},
        "topics": {
            name: f"{u}.{name}"
            for name, value in TopicsConfig().model_dump().items()
            if isinstance(value, str)
        }
        | {"partitions": 4},
        "ingest": {"group_id": f"{u}-ingest", "idle_flush_s": 3600},
        "app": {"app_id": u, "http_port": 0},
        "access": {"enabled": False},
        "delivery": {"enabled": False},
    }
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return load_settings(overrides=base)


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings.kafka, topic_specs(settings))


async def send(producer: AIOKafkaProducer, settings: Settings, messages: list[Message]) -> None:
    t = settings.topics
    for kind, key, value, _ in messages:
        await producer.send(t.rum if kind == "rum" else t.synthetic, value, key=key)
    await producer.flush()


async def produce(settings: Settings, messages: list[Message]) -> None:
    producer = make_producer(settings.kafka, linger_ms=20)
    await producer.start()
    try:
        await send(producer, settings, messages)
    finally:
        await producer.stop()


# -- the worker from outside --------------------------------------------------


async def metrics(worker: WorkerProcess) -> dict[str, float]:
    """Prometheus samples of the worker, by sample (name with labels)."""
    out: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            r = await client.get(f"http://127.0.0.1:{worker.port}/metrics")
    except httpx.HTTPError:
        return out
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[sample] = float(value)
    return out


def total(samples: dict[str, float], name: str, label: str = "") -> float:
    """Sum of the samples of ``name`` whose labels contain ``label``."""
    return sum(v for k, v in samples.items() if k.split("{", 1)[0] == name and label in k)


async def health(worker: WorkerProcess) -> dict[str, Any] | None:
    return await asyncio.to_thread(worker.health)


async def start(worker: WorkerProcess, within_s: float = 180.0) -> WorkerProcess:
    await asyncio.to_thread(worker.start)
    await asyncio.to_thread(worker.wait_healthy, within_s)
    return worker


async def stop(worker: WorkerProcess, sig: str) -> int:
    return await asyncio.to_thread(worker.stop, sig)


async def processed(workers: list[WorkerProcess]) -> tuple[float, float, float]:
    """(valid events in, bucket messages out, bucket messages judged) over ``workers``."""
    events = out = judged = 0.0
    for w in workers:
        m = await metrics(w)
        events += total(m, "apiwatch_events_in_total")
        # Summaries, plus synthetic runs: those go to the buckets topic as they are.
        synthetic = f'topic="{w.settings.topics.synthetic}"'
        out += total(m, "apiwatch_bucket_summaries_total")
        out += total(m, "apiwatch_events_in_total", synthetic)
        h = await health(w)
        judged += float(((h or {}).get("stages", {}).get("detect") or {}).get("processed", 0))
    return events, out, judged


async def wait_caught_up(workers: list[WorkerProcess], events: int, within_s: float = 90.0) -> None:
    """Until ``workers`` took in ``events`` valid events and judged all they emitted."""
    deadline = time.monotonic() + within_s
    last: tuple[float, float, float] | None = None
    while time.monotonic() < deadline:
        for w in workers:
            assert w.alive, f"worker died:\n{w.log_tail()}"
        now = await processed(workers)
        if now[0] >= events and now[2] >= now[1] and now == last:
            return
        last = now
        await asyncio.sleep(0.7)
    tails = "\n---\n".join(w.log_tail(15) for w in workers)
    raise AssertionError(f"not caught up within {within_s} s: {last} vs {events} events\n{tails}")


# -- reading topics back ------------------------------------------------------


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[Any]], bool] = lambda _: True,
    quiet_s: float = 1.5,
    within_s: float = 60.0,
) -> list[Any]:
    """Read ``topic`` group-less from the beginning until ``until(records)`` holds and
    nothing new arrived for ``quiet_s`` (an empty fetch, not the reported end offset,
    says "the end": DESIGN.md notes Tansu reports end offsets short), or the deadline."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        await assign_all(consumer, topic)
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)  # a lower bound of the real end on Tansu
        deadline = time.monotonic() + within_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            got = 0
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
                got += len(batch)
            now = time.monotonic()
            if got:
                last_new = now
            elif now - last_new >= quiet_s and until(records):
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                    return records
    finally:
        await consumer.stop()
    return records


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app.app_id}-monitors-changelog"


def latest(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Latest SeriesMonitor state per series from changelog records (compaction by hand)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.key.startswith(b"\x00"):  # detection's own bookkeeping (offsets judged)
            continue
        if r.value is None:
            out.pop(r.key.decode(), None)
        else:
            out[r.key.decode()] = orjson.loads(r.value)
    return out


def judged_buckets(records: list[Any]) -> dict[str, dict[int, int]]:
    """Per series, the RUM buckets detection accepted (start ms -> events counted).

    Replays the monitor's own rule over the buckets topic in partition order: a
    bucket at or before the last one judged is a replay and is dropped.
    """
    out: dict[str, dict[int, int]] = {}
    last: dict[str, int] = {}
    for r in records:
        body = DetectMessage.model_validate_json(b'{"body":' + r.value + b"}").body
        if not isinstance(body, BucketSummary):
            continue
        start_ms = body.start_ms
        if body.series in last and start_ms <= last[body.series]:
            continue
        last[body.series] = start_ms
        out.setdefault(body.series, {})[start_ms] = body.count
    return out


@dataclass
class RunResult:
    name: str
    #: Alerts as detection emitted them (the pending topic, before incident linking).
    detected: list[AlertEvent]
    #: Alerts as published (after the link stage).
    alerts: list[AlertEvent]
    states: dict[str, dict[str, Any]]
    judged: dict[str, dict[int, int]]
    bucket_records: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def alert_ids(self) -> set[str]:
        return {a.id for a in self.detected}

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return {(a.data.fingerprint, a.transition) for a in self.detected}

    @property
    def duplicates(self) -> int:
        """Detected alerts delivered more than once (each copy with the same id)."""
        return len(self.detected) - len(self.alert_ids)

    @property
    def published_duplicates(self) -> int:
        return len(self.alerts) - len({a.id for a in self.alerts})

    @property
    def link_updates(self) -> set[tuple[str, str]]:
        """``updated`` emissions the link stage added (not from detection)."""
        return {(a.data.fingerprint, a.id) for a in self.alerts if a.id not in self.alert_ids}

    @property
    def events_judged(self) -> int:
        return sum(sum(b.values()) for b in self.judged.values())


def states_match(ref: RunResult | None) -> Callable[[list[Any]], bool]:
    """Changelog predicate: every series has reached the reference's last bucket."""
    if ref is None:
        return lambda _: True
    target = {k: (v["last_start_ms"], v["buckets_seen"]) for k, v in ref.states.items()}

    def done(records: list[Any]) -> bool:
        got = latest(records)
        return all(
            k in got and (got[k]["last_start_ms"], got[k]["buckets_seen"]) >= t
            for k, t in target.items()
        )

    return done


async def result(
    name: str, settings: Settings, ref: RunResult | None = None, within_s: float = 90.0
) -> RunResult:
    """Read back what a run produced. With ``ref``, wait until state reaches the reference's."""
    t = settings.topics
    changelog = await read_topic(
        settings, changelog_topic(settings), until=states_match(ref), within_s=within_s
    )

    pending, buckets = await asyncio.gather(
        read_topic(settings, t.alerts_pending, within_s=within_s),
        read_topic(settings, t.buckets, within_s=within_s),
    )
    # The link stage publishes what detection emitted a little later (later still
    # while its partition moves in a rebalance): wait for every id to show up.
    ids = {AlertEvent.model_validate_json(r.value).id for r in pending}

    def published(records: list[Any]) -> bool:
        return {AlertEvent.model_validate_json(r.value).id for r in records} >= ids

    alerts = await read_topic(settings, t.alerts, until=published, within_s=within_s)
    return RunResult(
        name,
        detected=[AlertEvent.model_validate_json(r.value) for r in pending],
        alerts=[AlertEvent.model_validate_json(r.value) for r in alerts],
        states=latest(changelog),
        judged=judged_buckets(buckets),
        bucket_records=len(buckets),
    )


def assigned(w: WorkerProcess) -> list[str] | None:
    """The worker's latest ingest assignment, from its log."""
    found = re.findall(r"ingest assigned \[(.*)\]", w.log_tail(400))
    return [p for p in found[-1].replace("'", "").split(", ") if p] if found else None


def detect_assigned(w: WorkerProcess) -> set[int] | None:
    """Partitions of the buckets topic in the worker's latest Faust assignment, from its log.

    Faust logs each assignment as a table (``| <topic> | {0, 2-3} |``) after
    "Setting newly assigned partitions"; revocations are logged the same way.
    """
    topic = re.escape(w.settings.topics.buckets)
    row = re.compile(rf"\|\s*{topic}\s*\|\s*\{{([^}}]*)\}}")
    found: set[int] | None = None
    for chunk in w.log_tail(10**6).split("Setting newly assigned partitions")[1:]:
        m = row.search(chunk.split("for group", 1)[0])
        if m:
            found = set()
            for part in m.group(1).replace(" ", "").split(","):
                lo, _, hi = part.partition("-")
                found.update(range(int(lo), int(hi or lo) + 1))
    return found


#: Every worker the suite made, so none outlives a run that failed half-way.
WORKERS: list[WorkerProcess] = []


def worker(settings: Settings, state_dir: Path, *roles: str) -> WorkerProcess:
    w = WorkerProcess(settings, state_dir, *(roles or ("ingest", "detect")))
    WORKERS.append(w)
    return w


def kill_leftovers() -> None:
    """SIGKILL the suite's workers still running (after a failure; a passing run stops its own)."""
    while WORKERS:
        WORKERS.pop().stop("KILL")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
