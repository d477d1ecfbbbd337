"""``apiwatch demo``: broker, worker and simulator together, with a live terminal view.

With no Kafka configured it starts the embedded broker. The worker runs as a
child process (exactly what ``apiwatch worker`` runs), the simulator publishes
the built-in scenario faster than real time, and the view shows event rates,
dead letters and alerts as they fire and resolve. At the end it scores the
alerts against the injected incidents and prints a summary whose last line is
one JSON object. Every child process is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.scoring import FiredAlert, score
from apiwatch.models.simulation import Scenario
from apiwatch.settings import Settings
from apiwatch.streams.broker import EmbeddedBroker, free_port
from apiwatch.streams.kafka import assign_from_start, ensure_topics, make_consumer, topic_specs
from apiwatch.streams.simulate import SimulationProgress, SimulationRun
from apiwatch.streams.worker import worker_env

#: Wall seconds kept after the simulation for the last buckets to be judged.
TAIL_S = 7.0
#: Wall seconds kept at the end to stop the workers; past it they are killed, which
#: loses nothing (offsets are committed only for work that is durable).
STOP_S = 6.0
_METRIC = re.compile(r"^apiwatch_events_in_total\{[^}]*\} ([0-9.e+]+)$", re.M)


@dataclass
class DemoState:
    started: float = field(default_factory=time.monotonic)
    sim: SimulationProgress = field(default_factory=SimulationProgress)
    ingested: float = 0.0
    rate: float = 0.0
    peak_rate: float = 0.0
    dead_letters: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    alerts: list[AlertEvent] = field(default_factory=list)
    recent: deque[AlertEvent] = field(default_factory=lambda: deque(maxlen=12))
    worker_alive: bool = True
    webhooks: int = 0


def _settings_for_demo(
    settings: Settings, bootstrap: str, run_id: str, external: bool, hook_url: str
) -> Settings:
    topics = settings.topics
    app = settings.app
    if external:
        # On a shared cluster, keep each demo's data apart from real traffic and other demos.
        names = {
            k: f"{getattr(topics, k)}.{run_id}"
            for k in ("rum", "synthetic", "otlp", "deadletter", "buckets", "alerts")
        }
        topics = topics.model_copy(update=names)
    app = app.model_copy(update={"app_id": f"apiwatch-demo-{run_id}"})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
    # The delivery API's fixed port may be taken on a developer machine: any free one will do.
    api = settings.delivery.api.model_copy(update={"port": 0})
    # Webhook receivers post to the demo's own recorder, so delivery is part of the show.
    receivers = {
        name: r.model_copy(update={"url": hook_url}) if getattr(r, "type", "") == "webhook" else r
        for name, r in settings.delivery.receivers.items()
    }
    route = settings.delivery.route.model_copy(update={"group_wait_s": 2.0})
    delivery = settings.delivery.model_copy(
        update={
            "api": api,
            "receivers": receivers,
            "route": route,
            "group_id": f"demo-{run_id}-deliver",
        }
    )
    return settings.model_copy(
        update={"kafka": kafka, "topics": topics, "app": app, "delivery": delivery}
    )


def _render(state: DemoState, scenario: Scenario, duration: float) -> Group:
    elapsed = time.monotonic() - state.started
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[bold]elapsed[/bold] {elapsed:5.1f}/{duration:.0f} s",
        f"[bold]event time[/bold] {time.strftime('%H:%M:%S', time.gmtime(state.sim.sim_time_ms / 1000)) if state.sim.sim_time_ms else '-'}",
        f"[bold]produced[/bold] {state.sim.rum:,} RUM · {state.sim.synthetic:,} synthetic · {state.sim.malformed} malformed",
    )
    head.add_row(
        f"[bold]ingested[/bold] {int(state.ingested):,}",
        f"[bold]rate[/bold] {state.rate:,.0f} events/s",
        f"[bold]webhooks[/bold] {state.webhooks} · [bold]dead letters[/bold] {state.dead_letters} "
        + ", ".join(f"{k}:{v}" for k, v in sorted(state.dead_reasons.items())),
    )
    table = Table(title="alerts", expand=True, show_lines=False)
    for col in ("event time", "transition", "kind", "severity", "summary"):
        table.add_column(col, overflow="fold")
    colours = {"firing": "red", "updated": "yellow", "resolved": "green"}
    for ev in reversed(state.recent):
        c = colours[ev.transition]
        table.add_row(
            ev.time.strftime("%H:%M:%S"),
            f"[{c}]{ev.transition}[/{c}]",
            ev.data.kind.value,
            ev.data.severity.value,
            ev.data.summary,
        )
    worker = "" if state.worker_alive else "[red]worker exited[/red]"
    return Group(
        Panel(
            head,
            title=f"apiwatch demo · {len(scenario.services)} services · {len(scenario.checks)} checks {worker}",
        ),
        table,
    )


async def _watch(settings: Settings, state: DemoState, stop: asyncio.Event) -> None:
    t = settings.topics
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    dl_consumer = make_consumer(settings.kafka, group_id=None)
    await dl_consumer.start()
    try:
        await assign_from_start(consumer, t.alerts)
        await assign_from_start(dl_consumer, t.deadletter)
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for rec in records:
                    try:
                        ev = AlertEvent.model_validate_json(rec.value)
                    except ValidationError:
                        continue
                    state.alerts.append(ev)
                    state.recent.append(ev)
            for records in (await dl_consumer.getmany(timeout_ms=50)).values():
                for rec in records:
                    state.dead_letters += 1
                    with contextlib.suppress(Exception):
                        state.dead_reasons[orjson.loads(rec.value)["reason"]] += 1
    finally:
        await consumer.stop()
        await dl_consumer.stop()


async def _scrape(port: int, state: DemoState, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        last_t, last_n = time.monotonic(), 0.0
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                state.ingested = sum(float(m) for m in _METRIC.findall(text))
                now = time.monotonic()
                if now - last_t >= 1.0:
                    state.rate = (state.ingested - last_n) / (now - last_t)
                    state.peak_rate = max(state.peak_rate, state.rate)
                    last_t, last_n = now, state.ingested
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


async def _webhook_recorder(state: DemoState) -> tuple[web.AppRunner, str]:
    """A local webhook subscriber that counts what the delivery stage sends it."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        state.webhooks += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hooks/apiwatch"


#: The two worker processes of the demo, one per core: the bucket path with the
#: Faust detect agents and delivery, and the access-pattern fold on its own.
WORKER_ROLES = (("ingest", "detect", "deliver", "otlp"), ("access",))


def _spawn_worker(
    settings: Settings, tmp: Path, port: int, log_path: Path, roles: tuple[str, ...]
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "apiwatch", "worker", "--loglevel", "warning"]
    for role in roles:
        cmd += ["--role", role]
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            cmd,
            env=worker_env(settings, tmp / f"state-{port}", port),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def run_demo(
    settings: Settings,
    scenario: Scenario,
    duration: float,
    console: Console,
    truth_out: Path | None = None,
) -> tuple[dict[str, Any], bool]:
    run_id = uuid.uuid4().hex[:8]
    external = bool(settings.kafka.bootstrap_servers)
    state = DemoState()
    recorder, hook_url = await _webhook_recorder(state)
    broker = None if external else EmbeddedBroker().start()
    bootstrap = settings.kafka.bootstrap_servers or (broker.bootstrap_servers if broker else "")
    settings = _settings_for_demo(settings, bootstrap, run_id, external, hook_url)
    ports = [free_port() for _ in WORKER_ROLES]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers: list[subprocess.Popen[bytes]] = []
    sim = SimulationRun(
        settings,
        scenario,
        speed=max(1.0, scenario.duration_s / max(5.0, duration - TAIL_S - STOP_S)),
    )
    with tempfile.TemporaryDirectory(prefix="apiwatch-demo-") as tmp:
        logs = [Path(tmp) / f"worker-{i}.log" for i in range(len(WORKER_ROLES))]
        try:
            await ensure_topics(settings.kafka, topic_specs(settings))
            for port, log_path, roles in zip(ports, logs, WORKER_ROLES, strict=True):
                workers.append(_spawn_worker(settings, Path(tmp), port, log_path, roles))
            if truth_out is not None:
                sim.write_truth(truth_out)
            sim.on_progress = lambda p: setattr(state, "sim", p)
            watcher = asyncio.create_task(_watch(settings, state, stop))
            scraper = asyncio.create_task(_scrape(ports[0], state, stop))
            sim_task = asyncio.create_task(sim.run(stop))
            deadline = state.started + duration - STOP_S
            with Live(
                _render(state, scenario, duration),
                console=console,
                refresh_per_second=4,
                transient=False,
            ) as live:
                while not stop.is_set() and time.monotonic() < deadline:
                    live.update(_render(state, scenario, duration))
                    if any(w.poll() is not None for w in workers):
                        state.worker_alive = False
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
                live.update(_render(state, scenario, duration))
            stop.set()
            for task in (sim_task, watcher, scraper):
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)
        finally:
            stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await asyncio.gather(
                *(asyncio.to_thread(_stop_process, w, STOP_S - 1.0) for w in workers)
            )
            if broker is not None:
                broker.stop()
            await recorder.cleanup()
        for w, log_path in zip(workers, logs, strict=False):
            if w.returncode not in (0, -signal.SIGTERM) and not state.worker_alive:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                console.print(
                    "[red]a worker exited early; its last lines:[/red]\n" + "\n".join(tail)
                )
    firing = [ev for ev in state.alerts if ev.transition == "firing"]
    report = score([FiredAlert.from_event(ev) for ev in firing], sim.truth())
    resolved = {ev.data.fingerprint for ev in state.alerts if ev.transition == "resolved"}
    summary = {
        "events": int(state.ingested),
        "dead_letters": state.dead_letters,
        "alerts": dict(Counter(ev.data.kind.value for ev in firing)),
        "incidents_injected": report.injected,
        "incidents_detected": report.detected,
        "false_alerts": report.false_alerts,
    }
    console.print(
        f"\n{summary['events']:,} events ingested at up to {state.peak_rate:,.0f}/s · "
        f"{state.dead_letters} dead letters · {len(firing)} alerts fired, "
        f"{len(resolved & {e.data.fingerprint for e in firing})} resolved · "
        f"{state.webhooks} webhooks delivered"
    )
    for t in report.missed:
        console.print(f"[yellow]missed[/yellow] {t.kind} on {t.labels}")
    for a in report.false:
        console.print(f"[yellow]false alert[/yellow] {a.kind} on {a.labels}")
    if report.ttd_s:
        console.print(
            f"time to detect (event time): {', '.join(f'{s:.0f} s' for s in report.ttd_s)}"
        )
    return summary, state.worker_alive
