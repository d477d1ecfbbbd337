"""Publish simulated traffic to Kafka, paced against the wall clock.

Event time runs ``speed`` times faster than wall time and is anchored so the
simulated clock never runs ahead of the real one (the ingest stage rejects
events from the future): the run starts in the past and ends about now.
RUM events are keyed by service and synthetic results by check, so each
series stays on one partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml
from pydantic import ValidationError

from apiwatch.models.simulation import Scenario, Simulator, Truth, malformed_messages
from apiwatch.settings import Settings, config_dir, describe_validation_error
from apiwatch.streams.kafka import make_producer

TICK_S = 0.2


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message says where and why."""


def load_scenario(path: Path | None) -> Scenario:
    """Load a scenario YAML file, or the built-in demo scenario when ``path`` is None."""
    path = path or (config_dir() / "scenarios" / "demo.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"scenario {path}{where} is not valid YAML") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(describe_validation_error(exc, f"scenario {path}: ")) from None


@dataclass
class SimulationProgress:
    rum: int = 0
    synthetic: int = 0
    malformed: int = 0
    sim_time_ms: int = 0
    done: bool = False


def anchored_start_ms(scenario: Scenario, speed: float, now_ms: int | None = None) -> int:
    """Start so that event time never passes the wall clock during the run."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    lag = scenario.duration_s * (speed - 1) / speed if speed > 1 else 0.0
    return now_ms - int(lag * 1000) - 1000


class SimulationRun:
    """Produces a scenario to the RUM and synthetic topics at ``speed`` x real time."""

    def __init__(
        self,
        settings: Settings,
        scenario: Scenario,
        speed: float = 1.0,
        start_ms: int | None = None,
        on_progress: Callable[[SimulationProgress], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.settings = settings
        self.scenario = scenario
        self.speed = speed
        self.sim = Simulator(
            scenario, start_ms if start_ms is not None else anchored_start_ms(scenario, speed)
        )
        self.progress = SimulationProgress()
        self.on_progress = on_progress

    def truth(self) -> list[Truth]:
        return self.sim.truth()

    def write_truth(self, path: Path) -> None:
        path.write_bytes(
            orjson.dumps([t.as_dict() for t in self.truth()], option=orjson.OPT_INDENT_2)
        )

    async def run(self, stop: asyncio.Event | None = None) -> SimulationProgress:
        stop = stop or asyncio.Event()
        t = self.settings.topics
        producer = make_producer(self.settings.kafka, linger_ms=20, acks=1)
        await producer.start()
        bad = malformed_messages(self.sim.start_ms)
        total_bad = self.scenario.malformed
        duration_ms = int(self.scenario.duration_s * 1000)
        try:
            wall0 = time.monotonic()
            done_ms = 0
            while done_ms < duration_ms and not stop.is_set():
                target = min(duration_ms, int((time.monotonic() - wall0) * self.speed * 1000))
                if target <= done_ms:
                    await asyncio.sleep(TICK_S)
                    continue
                rum, syn = self.sim.generate(done_ms, target)
                for ev in rum:
                    await producer.send(t.rum, orjson.dumps(ev), key=ev["service"].encode())
                for res in syn:
                    await producer.send(
                        t.synthetic, orjson.dumps(res), key=res["check_id"].encode()
                    )
                # Spread the malformed messages evenly over the run.
                due = (total_bad * target) // duration_ms
                while self.progress.malformed < due:
                    _, payload = bad[self.progress.malformed % len(bad)]
                    await producer.send(t.rum, payload, key=b"malformed")
                    self.progress.malformed += 1
                self.progress.rum += len(rum)
                self.progress.synthetic += len(syn)
                self.progress.sim_time_ms = self.sim.start_ms + target
                done_ms = target
                if self.on_progress:
                    self.on_progress(self.progress)
            await producer.flush()
        finally:
            await producer.stop()
        self.progress.done = True
        if self.on_progress:
            self.on_progress(self.progress)
        return self.progress
