"""Detection quality of the access-pattern detectors on simulated traffic.

Two offline runs through :class:`~apiwatch.models.access.replay.AccessReplay`
(exactly the stream's code, with event time for the clock):

1. the attack scenario (``config/scenarios/attacks.yaml``): per attack kind,
   recall, precision and median time-to-detect (event time from the attack's
   start to its first matching alert), plus alerts on the heavy legitimate
   clients (carrier NAT, batch job, partner), which must be none;
2. the same traffic with no attacks (heavy legitimate clients and the daily
   rhythm kept) for ``--normal-hours`` or ``--normal-days``: every alert is a
   false one, reported per 10,000 client-days (a client-day is one client IP
   active on one day of event time, counted day by day). ``--normal-clients``
   and ``--normal-rate-scale`` (requests of the ordinary clients, not of the
   heavy ones) size the population; ``--no-attacks`` skips run 1.

Usage::

    .venv/bin/python benchmarks/quality_access.py [--scenario FILE] [--normal-hours 6]
    .venv/bin/python benchmarks/quality_access.py --no-attacks --normal-days 7 \
        --normal-clients 3000 --normal-rate-scale 0.25

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.replay import AccessReplay
from apiwatch.models.access.traffic import attack_identities, heavy_identity
from apiwatch.models.events import RumEvent
from apiwatch.models.monitor import Emission
from apiwatch.models.scoring import FiredAlert, matches
from apiwatch.models.simulation import DETECTED_BY, Scenario, Simulator, Truth
from apiwatch.settings import config_dir
from apiwatch.streams.simulate import load_scenario

SLICE_MS = 10_000
DAY_MS = 86_400_000
GRACE_MS = 300_000
EVENTS = TypeAdapter(list[RumEvent])


@dataclass
class Run:
    alerts: list[FiredAlert] = field(default_factory=list)
    sources: dict[int, set[str]] = field(default_factory=dict)  # alert -> IPs in its evidence
    attack_clients: set[str] = field(default_factory=set)  # every identity an attack uses
    truths: list[Truth] = field(default_factory=list)
    heavy: set[str] = field(default_factory=set)
    clients: set[str] = field(default_factory=set)
    client_days: int = 0  # distinct client IPs per day of event time, summed
    events: int = 0
    seconds: float = 0.0
    days: float = 0.0


def replay(scenario: Scenario, cfg: AccessConfig, progress: bool = False) -> Run:
    # Anchor the run a day in the past: events from the future would be rejected.
    start_ms = (
        (int(time.time() * 1000) - int(scenario.duration_s * 1000) - 86_400_000)
        // 3_600_000
        * 3_600_000
    )
    sim = Simulator(scenario, start_ms)
    r = AccessReplay(cfg)
    run = Run(truths=sim.truth(), days=scenario.duration_s / 86_400)
    for h in sim.heavy_specs():
        run.heavy |= heavy_identity(h)
    for _, spec in sim.attack_specs():
        run.attack_clients |= attack_identities(spec.kind, spec.ident)
    emissions: list[Emission] = []
    began = time.perf_counter()
    ctx = {"now": time.time(), "max_future_skew_s": 300.0}
    today: set[str] = set()
    for rel in range(0, int(scenario.duration_s * 1000), SLICE_MS):
        if rel and rel % DAY_MS == 0:
            run.client_days += len(today)
            today = set()
            if progress:
                print(f"  day {rel // DAY_MS}: {run.events:,} events, {len(emissions)} alert "
                      f"events, {time.perf_counter() - began:.0f} s", file=sys.stderr)  # fmt: skip
        rum, _ = sim.generate(rel, rel + SLICE_MS)
        events = EVENTS.validate_python(rum, context=ctx)
        run.events += len(events)
        ips = {e.client_ip for e in events}
        run.clients |= ips
        today |= ips
        emissions += r.feed(events)
    emissions += r.finish()
    run.client_days += len(today)
    run.seconds = time.perf_counter() - began
    for e in emissions:
        if e.transition == "firing":
            a = FiredAlert(e.alert.kind.value, e.alert.labels, int(e.time.timestamp() * 1000))
            run.alerts.append(a)
            run.sources[id(a)] = set(e.alert.evidence.details.get("source_ips", []))
    return run


def _on_attack(alert: FiredAlert, run: Run) -> bool:
    """The alert names an attacker, an account it used or attacked, or cites its IPs."""
    ips = run.attack_clients
    return alert.labels.get("client") in ips or bool(run.sources[id(alert)] & ips)


def score_attacks(run: Run) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {}
    ttd: dict[str, list[float]] = defaultdict(list)
    for t in run.truths:
        k = by_kind.setdefault(t.kind, {"injected": 0, "detected": 0})
        k["injected"] += 1
        hits = [a for a in run.alerts if matches(a, t, GRACE_MS)]
        if hits:
            k["detected"] += 1
            ttd[t.kind].append((min(a.time_ms for a in hits) - t.start_ms) / 1000)
    true_alerts = {id(a) for a in run.alerts for t in run.truths if matches(a, t, GRACE_MS)}
    kinds = Counter(a.kind for a in run.alerts)
    correct = Counter(a.kind for a in run.alerts if id(a) in true_alerts or _on_attack(a, run))
    for kind, k in by_kind.items():
        k["recall"] = round(k["detected"] / k["injected"], 3)
        k["median_ttd_s"] = round(statistics.median(ttd[kind]), 1) if ttd[kind] else None
        # Precision: of the alerts of the kinds that answer this attack, the share that
        # point at a real attack (the attacker, or an account it used or attacked).
        alert_kinds = DETECTED_BY.get(kind, (kind,))
        n = sum(kinds[a] for a in alert_kinds)
        k["precision"] = round(sum(correct[a] for a in alert_kinds) / n, 3) if n else None
    other = [a for a in run.alerts if id(a) not in true_alerts]
    on_heavy = [a for a in other if a.labels.get("client") in run.heavy]
    on_attackers = [a for a in other if a not in on_heavy and _on_attack(a, run)]
    false = [a for a in other if a not in on_heavy and a not in on_attackers]
    all_ttd = [x for v in ttd.values() for x in v]
    return {
        "by_kind": by_kind,
        "detected": sum(k["detected"] for k in by_kind.values()),
        "injected": sum(k["injected"] for k in by_kind.values()),
        "median_ttd_s": round(statistics.median(all_ttd), 1) if all_ttd else None,
        "alerts_on_heavy_legit": len(on_heavy),
        "heavy_alerts": [f"{a.kind} {a.labels.get('client')}" for a in on_heavy],
        "other_alerts_on_attacks": len(on_attackers),
        "on_attacks": [f"{a.kind} {a.labels.get('client')}" for a in on_attackers][:20],
        "false_alerts": len(false),
        "false": [f"{a.kind} {a.labels.get('client') or a.labels.get('route')}" for a in false][
            :20
        ],
    }


def score_normal(run: Run) -> dict[str, Any]:
    # A run shorter than a day counts its clients for the part of the day it covers.
    client_days = run.client_days * min(1.0, run.days)
    on_heavy = [a for a in run.alerts if a.labels.get("client") in run.heavy]
    info = [a for a in run.alerts if a.kind == "anomalous_client"]
    return {
        "hours": round(run.days * 24, 2),
        "clients": len(run.clients),
        "client_days": round(client_days, 1),
        "events": run.events,
        "false_alerts": len(run.alerts),
        "of_which_info_anomalous_client": len(info),
        "alerts_on_heavy_legit": len(on_heavy),
        "false_per_10k_clients_per_day": round(len(run.alerts) / client_days * 10_000, 3),
        "false_per_10k_clients_per_day_without_info": round(
            (len(run.alerts) - len(info)) / client_days * 10_000, 3
        ),
        # With no false alert the figure is 0, but the run can only resolve down to this.
        "resolution_per_10k_clients_per_day": round(10_000 / client_days, 3),
        "alerts": [
            f"{a.kind} {a.labels.get('client') or a.labels.get('route')}" for a in run.alerts
        ][:40],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--scenario", type=Path, default=config_dir() / "scenarios" / "attacks.yaml")
    p.add_argument("--normal-hours", type=float, default=6.0)
    p.add_argument("--normal-days", type=float, help="instead of --normal-hours")
    p.add_argument("--normal-clients", type=int, help="ordinary clients (default: the scenario's)")
    p.add_argument("--normal-rate-scale", type=float, default=1.0,
                   help="multiplies the ordinary clients' request rates (not the heavy ones')")  # fmt: skip
    p.add_argument("--no-attacks", action="store_true", help="only the normal-traffic run")
    args = p.parse_args()
    cfg = AccessConfig()
    scenario = load_scenario(args.scenario)
    out: dict[str, Any] = {}
    if not args.no_attacks:
        out["attacks"] = _attacks(scenario, cfg)
    hours = args.normal_days * 24 if args.normal_days is not None else args.normal_hours
    services = [
        svc.model_copy(update={"rate_rps": svc.rate_rps * args.normal_rate_scale})
        for svc in scenario.services
    ]
    normal_sc = scenario.model_copy(
        update={
            "incidents": [],
            "duration_s": hours * 3600,
            "seed": scenario.seed + 1,
            "clients": args.normal_clients or scenario.clients,
            "services": services,
        }
    )
    normal = replay(normal_sc, cfg, progress=hours > 24)
    n = out["normal"] = score_normal(normal)
    print(f"normal traffic: {n['hours']} h, {n['clients']:,} client IPs, {n['client_days']:,} "
          f"client-days, {normal.events:,} events (replayed at "
          f"{normal.events / normal.seconds:,.0f} events/s): {n['false_alerts']} alerts "
          f"({n['of_which_info_anomalous_client']} info anomalous_client, "
          f"{n['alerts_on_heavy_legit']} on heavy legitimate clients): "
          f"{n['false_per_10k_clients_per_day']} per 10,000 client-days "
          f"({n['false_per_10k_clients_per_day_without_info']} without the info alerts; "
          f"resolution {n['resolution_per_10k_clients_per_day']})")  # fmt: skip
    print(json.dumps(out), flush=True)


def _attacks(scenario: Scenario, cfg: AccessConfig) -> dict[str, Any]:
    attacks = replay(scenario, cfg)
    a = score_attacks(attacks)
    print(f"attack scenario: {attacks.events:,} events, {len(attacks.clients):,} client IPs, "
          f"replayed in {attacks.seconds:.1f} s ({attacks.events / attacks.seconds:,.0f} events/s)")  # fmt: skip
    print(f"{'kind':22} {'found':>7} {'recall':>7} {'precision':>9} {'median TTD':>11}")
    for kind, k in sorted(a["by_kind"].items()):
        ttd = f"{k['median_ttd_s']:.0f} s" if k["median_ttd_s"] is not None else "-"
        prec = f"{k['precision']:.2f}" if k["precision"] is not None else "-"
        print(
            f"{kind:22} {k['detected']:>3}/{k['injected']:<3} {k['recall']:>7.2f} {prec:>9} {ttd:>11}"
        )
    print(f"all attacks: {a['detected']}/{a['injected']} detected, median TTD {a['median_ttd_s']} s; "
          f"alerts on heavy legitimate clients: {a['alerts_on_heavy_legit']}; "
          f"other alerts on attackers or their victims: {a['other_alerts_on_attacks']}; "
          f"false alerts: {a['false_alerts']}")  # fmt: skip
    return a


if __name__ == "__main__":
    main()
