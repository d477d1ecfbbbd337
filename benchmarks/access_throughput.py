"""CPU cost of the access-pattern role, in process (no broker): prints figures, asserts nothing.

Events come from the attack scenario (``config/scenarios/attacks.yaml``: normal
traffic, heavy legitimate clients and attacks), cut into batches as the
ingest stage receives them, and are timed through:

1. fold: :meth:`AccessFolder.fold` + :meth:`AccessFolder.close_ready` on validated
   events (the per-client micro-windows);
2. access ingest: raw JSON bytes through the ingest stage's decode, the
   :class:`~apiwatch.streams.access.AccessExtension` (fold) and its drain (records
   packed into access-topic messages), i.e. the access role's raw-event path;
3. access detect: the packed messages parsed as the access-detect stage parses them
   and run through the :class:`~apiwatch.models.access.engine.AccessEngine`
   (trackers, rule detectors, model scoring), with a dict for state.

Usage::

    .venv/bin/python benchmarks/access_throughput.py [--minutes 30] [--batch 2000] [--repeat 3]

Each figure is the median of ``--repeat`` runs in CPU seconds of this process (steadier
than wall time on a shared machine), first with CPython's default garbage collector
settings, then with those the access role sets at start
(:func:`~apiwatch.streams.access.tune_gc`).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apiwatch.models.access.engine import AccessEngine, DictStore
from apiwatch.models.access.fold import AccessFolder
from apiwatch.models.access.records import ACCESS_MESSAGE
from apiwatch.models.decode import BatchDecoder
from apiwatch.models.events import RumEvent
from apiwatch.settings import Settings, config_dir
from apiwatch.streams.access import AccessExtension, tune_gc
from apiwatch.streams.simulate import load_scenario


def make_batches(minutes: float, batch: int) -> tuple[list[list[bytes]], float]:
    """Raw JSON messages of the attack scenario, in batches of ``batch``; and 'now'."""
    sc = load_scenario(config_dir() / "scenarios" / "attacks.yaml")
    from apiwatch.models.simulation import Simulator

    start_ms = (int(time.time() * 1000) - 2 * 86_400_000) // 3_600_000 * 3_600_000
    sim = Simulator(sc, start_ms)
    raw: list[bytes] = []
    for rel in range(0, int(minutes * 60_000), 10_000):
        rum, _ = sim.generate(rel, rel + 10_000)
        raw.extend(orjson.dumps(e) for e in rum)
    return [raw[i : i + batch] for i in range(0, len(raw), batch)], time.time()


def time_fold(events: list[list[RumEvent]], settings: Settings) -> float:
    folder = AccessFolder(settings.access, origin="apiwatch.rum.events:0")
    offset = 0
    began = time.process_time()
    for batch in events:
        folder.fold(batch, range(offset, offset + len(batch)))
        offset += len(batch)
        folder.close_ready()
    folder.close_ready(everything=True)
    return time.process_time() - began


def time_ingest(
    batches: list[list[bytes]], settings: Settings, now: float
) -> tuple[float, list[bytes]]:
    decoder = BatchDecoder(RumEvent, settings.ingest.max_message_bytes)
    ctx = {"now": now, "max_future_skew_s": settings.ingest.max_future_skew_s}
    ext = AccessExtension(settings, gc_tuning=False)
    messages: list[bytes] = []
    offset = 0
    began = time.process_time()
    for values in batches:
        decoded = decoder.decode(values, ctx)
        offsets = np.arange(offset, offset + len(values), dtype=np.int64)[decoded.source_index]
        offset += len(values)
        ext.on_batch(0, decoded.events, offsets, now)
        messages.extend(v for _, _, v in ext.drain(now))
    for folder in ext.folders.values():
        folder.advance((folder.watermark_ms or 0) + 3_600_000)
    messages.extend(v for _, _, v in ext.drain(now))
    return time.process_time() - began, messages


def time_detect(messages: list[bytes], settings: Settings) -> tuple[float, int]:
    engine = AccessEngine(settings.access)
    clients: dict[str, Any] = {}
    logins: dict[str, Any] = {}
    alerts = 0
    began = time.process_time()
    for m in messages:
        batch = ACCESS_MESSAGE.validate_json(m)
        store = DictStore(logins if batch.type == "login" else clients)
        alerts += len(engine.process(batch, store).emissions)
    return time.process_time() - began, alerts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--minutes", type=float, default=30.0, help="event time of traffic")
    p.add_argument("--batch", type=int, default=2000, help="events per getmany batch")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    settings = Settings()
    batches, now = make_batches(args.minutes, args.batch)
    n = sum(len(b) for b in batches)
    decoder = BatchDecoder(RumEvent, settings.ingest.max_message_bytes)
    ctx = {"now": now, "max_future_skew_s": settings.ingest.max_future_skew_s}
    events = [decoder.decode(b, ctx).events for b in batches]
    print(f"{n:,} events ({args.minutes:g} min of the attack scenario), batches of {args.batch}; "
          f"CPU seconds of this process, median of {args.repeat}")  # fmt: skip
    messages: list[bytes] = []
    for gc_mode in ("default", "tuned"):
        if gc_mode == "tuned":
            tune_gc()  # what the access role does at start (AccessExtension)
        gc.collect()
        fold = statistics.median(time_fold(events, settings) for _ in range(args.repeat))
        runs = [time_ingest(batches, settings, now) for _ in range(args.repeat)]
        ingest = statistics.median(t for t, _ in runs)
        messages = runs[0][1]
        detect = statistics.median(time_detect(messages, settings)[0] for _ in range(args.repeat))
        print(f"garbage collector: {gc_mode}")
        for name, secs in (
            ("fold (validated events -> window records)", fold),
            ("access ingest (bytes -> decode -> fold -> packed messages)", ingest),
            ("access detect (messages -> engine -> alerts)", detect),
            ("access role, ingest + detect", ingest + detect),
        ):
            print(f"  {name:60} {secs / n * 1e6:7.2f} µs/event {n / secs:>10,.0f} events/s")
    records = sum(len(orjson.loads(m)["records"]) for m in messages)
    print(f"{len(messages):,} access messages, {records:,} records")


if __name__ == "__main__":
    main()
