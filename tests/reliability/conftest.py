"""The suite's runs, all on one input and concurrently (each on its own topics and groups).

``runs`` executes, at once: the uninterrupted reference (one worker), a worker
stopped with SIGTERM and restarted, one killed with SIGKILL and restarted, a
two-worker scale-out where one worker leaves, a worker killed with SIGKILL while
the group rebalances for a joining one (then restarted), and three workers sharing
the partitions until one leaves. The tests then compare read-outs.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from apiwatch.models.buckets import rum_series_key
from apiwatch.streams.kafka import make_producer
from tests.kafka_helpers import WorkerProcess, eventually
from tests.reliability.harness import (
    RESTART_SPLIT_S,
    SCALE_SPLIT_S,
    Input,
    RunResult,
    assigned,
    create_topics,
    detect_assigned,
    kill_leftovers,
    metrics,
    produce,
    read_topic,
    result,
    run_settings,
    scenario_input,
    send,
    start,
    stop,
    total,
    wait_caught_up,
    worker,
)

END_S = 10**9
T0 = time.monotonic()


def phase(run: str, what: str) -> None:
    """Progress on stderr (shown with -s): where a slow or stuck run spends its time."""
    now = time.strftime("%H:%M:%S")
    print(f"[{time.monotonic() - T0:6.1f}s {now}] {run}: {what}", file=sys.stderr, flush=True)


async def reference_run(bootstrap: str, inp: Input, d: Path) -> RunResult:
    s = run_settings(bootstrap, "ref")
    await create_topics(s)
    await produce(s, inp.messages)
    phase("reference", "produced")
    w = worker(s, d)
    await start(w)
    phase("reference", "worker healthy")
    try:
        await wait_caught_up([w], len(inp.messages))
        phase("reference", "caught up")
        res = await result("reference", s)
        phase("reference", "read back")
        res.notes["log"] = w.log_tail(200)
        return res
    finally:
        await stop(w, "TERM")


async def restart_run(
    bootstrap: str, inp: Input, d: Path, sig: str, reference: asyncio.Task[RunResult]
) -> RunResult:
    s = run_settings(bootstrap, sig.lower())
    await create_topics(s)
    first = inp.part(0, RESTART_SPLIT_S)
    await produce(s, first)
    w1 = worker(s, d)
    await start(w1)
    phase(sig, "worker healthy")
    await wait_caught_up([w1], len(first))
    phase(sig, "first part caught up")
    t_stop = time.monotonic()
    code = await stop(w1, sig)
    await produce(s, inp.part(RESTART_SPLIT_S, END_S))
    w2 = worker(s, d)  # same app id, groups, topics and state dir
    await start(w2)
    phase(sig, "restarted worker healthy")
    try:
        ref = await reference
        res = await result(sig, s, ref)
        phase(sig, "read back")
        res.notes.update(exit_code=code, log=w2.log_tail(200), first_log=w1.log_tail(60))
        res.notes["restart_to_done_s"] = round(time.monotonic() - t_stop, 1)
        return res
    finally:
        await stop(w2, "TERM")


async def scale_out_run(
    bootstrap: str, inp: Input, d: Path, reference: asyncio.Task[RunResult]
) -> RunResult:
    s = run_settings(bootstrap, "scale")
    await create_topics(s)
    a, b = worker(s, d / "a"), worker(s, d / "b")
    await asyncio.gather(start(a), start(b))
    try:
        # Both in the group before any input arrives, so both do part of the work.
        await eventually(
            "shared assignment",
            lambda: assigned(a) and assigned(b),
            60,
            interval_s=0.5,
            context=a.log_tail,
        )
        first = inp.part(0, SCALE_SPLIT_S)
        phase("scale-out", "both assigned")
        await produce(s, first)
        await wait_caught_up([a, b], len(first))
        phase("scale-out", "first part caught up")
        shared = await read_topic(s, s.topics.alerts)
        notes: dict[str, Any] = {"assigned": (assigned(a), assigned(b))}
        notes["alerts_while_shared"] = len(shared)
        notes["b_exit"] = await stop(b, "TERM")
        await produce(s, inp.part(SCALE_SPLIT_S, END_S))
        phase("scale-out", "b left, rest produced")
        ref = await reference
        res = await result("scale-out", s, ref)
        phase("scale-out", "read back")
        res.notes.update(notes, log=a.log_tail(200))
        return res
    finally:
        await stop(a, "TERM")
        await stop(b, "TERM")


def rebalancing(w: WorkerProcess, group: str) -> bool:
    """``w`` was told ``group`` is rebalancing: a failed heartbeat, or a second join."""
    text = w.log_tail(10**6)
    if f"Heartbeat failed for group {group} because it is rebalancing" in text:
        return True
    return len(re.findall(rf"(?m)\(Re-\)joining group {re.escape(group)}\s*$", text)) >= 2


def first_assignment_at(w: WorkerProcess) -> float | None:
    """Wall-clock time of the worker's first ingest assignment, from its log."""
    m = re.search(r"^\[([\d-]+ [\d:]+),(\d+)\] .*ingest assigned", w.log_tail(10**6), re.M)
    if not m:
        return None
    stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    return stamp.timestamp() + int(m.group(2)) / 1000


#: From B's first join on, the rest of the input goes in chunks of this size (every
#: 0.1 s), so worker A is under load when its group rebalances.
FEED_CHUNK = 100


async def rebalance_kill_run(
    bootstrap: str, inp: Input, d: Path, reference: asyncio.Task[RunResult]
) -> RunResult:
    """A runs; B joins; A is SIGKILLed while the ingest group rebalances; A restarts."""
    run = "rebalance-KILL"
    s = run_settings(bootstrap, "rbk")
    await create_topics(s)
    first = inp.part(0, RESTART_SPLIT_S)
    await produce(s, first)
    a = worker(s, d / "a")
    await start(a)
    await wait_caught_up([a], len(first))
    phase(run, "A caught up on the first part; B starts")
    b = worker(s, d / "b")
    await asyncio.to_thread(b.start)
    rest = inp.part(RESTART_SPLIT_S, END_S)
    notes: dict[str, Any] = {}
    producer = make_producer(s.kafka, linger_ms=20)
    await producer.start()
    try:
        sent = 0

        async def fed_until_rebalancing() -> bool:
            # Keep A busy with fresh events from B's join until A is told to rebalance.
            nonlocal sent
            if rebalancing(a, s.ingest.group_id):
                return True
            if sent < len(rest) and "(Re-)joining group" in b.log_tail(10**6):
                await send(producer, s, rest[sent : sent + FEED_CHUNK])
                sent += FEED_CHUNK
            return False

        def both_alive() -> None:
            assert a.alive and b.alive, f"{a.log_tail()}\n---\n{b.log_tail()}"

        # B joins the Faust group first, then (once ready) the ingest group: its
        # JoinGroup puts that group into a rebalance, which A learns from its next
        # heartbeat. B cannot be assigned before A rejoins or A's session expires.
        await eventually(
            "rebalance seen by A",
            fed_until_rebalancing,
            180,
            context=a.log_tail,
            guard=both_alive,
        )
        notes["b_assigned_at_kill"] = assigned(b)
        notes["faust_rebalancing_at_kill"] = rebalancing(a, s.app.app_id)
        killed_at = time.time()
        notes["a_exit"] = await stop(a, "KILL")
        notes["fed_before_kill"] = min(sent, len(rest))
        phase(run, f"A killed during the rebalance ({notes['fed_before_kill']} fed); A restarts")
        await send(producer, s, rest[sent:])
    finally:
        await producer.stop()
    a2 = worker(s, d / "a")  # same app id, groups, topics and state dir
    try:
        await start(a2)
        ref = await reference
        res = await result(run, s, ref)
        phase(run, "read back")
        b_first = first_assignment_at(b)
        notes["b_first_assigned_after_kill"] = b_first is not None and b_first > killed_at
        notes["assigned"] = (assigned(a2), assigned(b))
        res.notes.update(notes, log=f"{a.log_tail(100)}\n---\n{b.log_tail(200)}")
        return res
    finally:
        await stop(a2, "TERM")
        await stop(b, "TERM")


#: The three-worker run raises the input topics to 6 partitions (the suite's 4 would
#: leave one worker no RUM partition with data: 3 services are keyed on 2 of the 4).
THREE_PARTITIONS = 6


def shared_out(ws: list[WorkerProcess], every: set[str]) -> bool:
    """Every worker holds part of the ingest partitions, disjoint, together all of them."""
    got = [set(assigned(w) or ()) for w in ws]
    return all(got) and sum(map(len, got)) == len(every) and set().union(*got) == every


async def three_workers_run(
    bootstrap: str, inp: Input, d: Path, reference: asyncio.Task[RunResult]
) -> RunResult:
    """Three workers share the first part; the one holding the auth series' detection
    state leaves with SIGTERM; the two others get the rest (error surge, outage)."""
    run = "three-workers"
    s = run_settings(bootstrap, "three", topics={"partitions": THREE_PARTITIONS})
    await create_topics(s)
    ws = [worker(s, d / n) for n in "abc"]
    await asyncio.gather(*(start(w) for w in ws))
    t = s.topics
    every = {f"{topic}[{p}]" for topic in (t.rum, t.synthetic) for p in range(THREE_PARTITIONS)}
    try:
        await eventually(
            "assignment shared by all three",
            lambda: shared_out(ws, every),
            90,
            interval_s=0.5,
            context=lambda: str([assigned(w) for w in ws]),
        )
        phase(run, "all three assigned")
        first = inp.part(0, SCALE_SPLIT_S)
        await produce(s, first)
        await wait_caught_up(ws, len(first))
        phase(run, "first part caught up")
        notes: dict[str, Any] = {
            "assigned": [assigned(w) for w in ws],
            "detect_assigned": [sorted(detect_assigned(w) or ()) for w in ws],
            "events_per_worker": [total(await metrics(w), "apiwatch_events_in_total") for w in ws],
            "alerts_while_shared": len(await read_topic(s, t.alerts)),
        }
        # The leaver holds the detection state of the series the later incidents hit.
        parts = list(range(THREE_PARTITIONS))
        auth = rum_series_key("production", "auth", "POST", "/login").encode()
        p = DefaultPartitioner()(auth, parts, parts)
        leaver = next((w for w in ws if p in (detect_assigned(w) or set())), ws[0])
        notes["leaver_held_auth_state"] = p in (detect_assigned(leaver) or set())
        notes["leaver_exit"] = await stop(leaver, "TERM")
        await produce(s, inp.part(SCALE_SPLIT_S, END_S))
        phase(run, "one left, rest produced")
        ref = await reference
        res = await result(run, s, ref)
        phase(run, "read back")
        survivors = [w for w in ws if w is not leaver]
        notes["survivors_assigned"] = [assigned(w) for w in survivors]
        res.notes.update(notes, log="\n---\n".join(w.log_tail(100) for w in ws))
        return res
    finally:
        for w in ws:
            await stop(w, "TERM")


@pytest.fixture(scope="session")
def runs(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RunResult]]:
    inp = scenario_input()

    async def main() -> dict[str, RunResult]:
        # Many blocking waits (worker start, health polls) run in threads at once.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        ref = asyncio.create_task(
            reference_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("ref"))
        )
        others = await asyncio.gather(
            restart_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("term"), "TERM", ref),
            restart_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("kill"), "KILL", ref),
            scale_out_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("scale"), ref),
            rebalance_kill_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("rbk"), ref),
            three_workers_run(kafka_bootstrap, inp, tmp_path_factory.mktemp("three"), ref),
        )
        return {"reference": await ref, **{r.name: r for r in others}}

    t0 = time.monotonic()
    try:
        out = asyncio.run(main())
    finally:
        kill_leftovers()
    out["reference"].notes["wall_s"] = round(time.monotonic() - t0, 1)
    report = {
        name: {
            "detected_alerts": len(r.detected),
            "distinct_detected_ids": len(r.alert_ids),
            "detected_duplicates_same_id": r.duplicates,
            "published_alerts": len(r.alerts),
            "published_duplicates_same_id": r.published_duplicates,
            "link_updates": len(r.link_updates),
            "bucket_records": r.bucket_records,
            "events_judged": r.events_judged,
            "series": len(r.states),
            **{k: v for k, v in r.notes.items() if "log" not in k},
        }
        for name, r in out.items()
    }
    path = tmp_path_factory.getbasetemp() / "reliability-runs.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    for name, r in out.items():  # for post-mortems
        dump = {
            "states": r.states,
            "detected": [a.model_dump(mode="json") for a in r.detected],
            "alerts": [a.model_dump(mode="json") for a in r.alerts],
        }
        (path.parent / f"reliability-{name}.json").write_text(json.dumps(dump, default=str))
        (path.parent / f"reliability-{name}.log").write_text(str(r.notes.get("log", "")))
    print(f"\nreliability runs: {json.dumps(report, default=str)}")
    yield out
