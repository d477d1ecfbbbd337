"""The suite's runs, all on one input and concurrently (each on its own topics and groups).

``runs`` executes, at once: the uninterrupted reference (one worker), a worker
stopped with SIGTERM and restarted, one killed with SIGKILL and restarted, and a
two-worker scale-out where one worker leaves. The tests then compare read-outs.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_helpers import WorkerProcess
from tests.reliability.harness import (
    RESTART_SPLIT_S,
    SCALE_SPLIT_S,
    Input,
    RunResult,
    create_topics,
    produce,
    read_topic,
    result,
    run_settings,
    scenario_input,
    start,
    stop,
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


def assigned(w: WorkerProcess) -> list[str] | None:
    """The worker's latest ingest assignment, from its log."""
    found = re.findall(r"ingest assigned \[(.*)\]", w.log_tail(400))
    return [p for p in found[-1].replace("'", "").split(", ") if p] if found else None


async def scale_out_run(
    bootstrap: str, inp: Input, d: Path, reference: asyncio.Task[RunResult]
) -> RunResult:
    s = run_settings(bootstrap, "scale")
    await create_topics(s)
    a, b = worker(s, d / "a"), worker(s, d / "b")
    await asyncio.gather(start(a), start(b))
    try:
        # Both in the group before any input arrives, so both do part of the work.
        deadline = time.monotonic() + 60
        while not (assigned(a) and assigned(b)):
            assert time.monotonic() < deadline, f"no shared assignment:\n{a.log_tail()}"
            await asyncio.sleep(0.5)
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
        )
        return {"reference": await ref, **{r.name: r for r in others}}

    t0 = time.monotonic()
    out = asyncio.run(main())
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
