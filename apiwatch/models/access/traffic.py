"""Simulated abusive and heavy-but-legitimate clients, as they look in the wild.

Pure generators used by :mod:`apiwatch.models.simulation`: each returns RUM
events (wire-contract dicts) with event time in ``[lo, hi)``, drawn from the
generator it is given, so a slice is the same for the same seed whatever the
wall clock. Attacks are shaped after what access logs show: credential lists
with a few percent of hits, residential-proxy pools of hundreds of IPs each
trying a couple of accounts, sequential id walks, catalogue crawls, scanner
path lists, keys leaked to several countries. Heavy legitimate clients are the
usual sources of false alarms: a carrier NAT, a nightly batch job, a partner.

>>> import numpy as np
>>> spec = AttackSpec("brute_force", "auth", "POST", "/login", rate=2.0, ident=3, seed=1)
>>> evs = attack_events(spec, 0, 10_000, np.random.default_rng(0))
>>> 10 < len(evs) < 35, {e["status"] for e in evs} <= {200, 401}, evs[0]["client_ip"]
(True, True, '185.220.3.17')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

AttackKind = Literal[
    "brute_force",
    "credential_stuffing",
    "distributed_stuffing",
    "enumeration",
    "scraping",
    "probing",
    "token_sharing",
    "impossible_travel",
]
HeavyKind = Literal["carrier_nat", "batch_job", "partner"]

_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/17.6 Safari",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
)
_SCANNERS = (
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Nuclei - Open-source project",
)
_SENSITIVE = (
    "/.env", "/.env.bak", "/.git/config", "/.git/HEAD", "/wp-admin/setup-config.php",
    "/wp-login.php", "/phpmyadmin/index.php", "/server-status", "/actuator/env",
    "/backup.zip", "/db.sql", "/config.php.bak", "/.aws/credentials", "/admin/console",
)  # fmt: skip
_PROBE_WORDS = ("admin", "old", "test", "api", "v1", "debug", "shell", "login", "setup", "tmp")
_BRUTE_FORCE_USERS = ("admin", "root", "support")
_FAR_COUNTRIES = (("DE", "AU"), ("US", "SG"), ("FR", "BR"), ("GB", "JP"))


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """One attack: kind, target route, overall rate (req/s), attacker number, seed."""

    kind: str
    service: str
    method: str
    route: str
    rate: float
    ident: int
    seed: int
    environment: str = "production"


def attacker_ip(ident: int) -> str:
    """>>> attacker_ip(3)
    '185.220.3.17'
    """
    return f"185.220.{ident % 250}.{17 + ident // 250}"


def attacker_identity(kind: str, ident: int) -> dict[str, str]:
    """What an alert must name to detect the attack (ground-truth labels)."""
    if kind == "token_sharing":
        return {"client": f"key-leaked-{ident}"}
    if kind == "impossible_travel":
        return {"client": f"traveller{ident}"}
    if kind == "distributed_stuffing":
        return {}
    return {"client": attacker_ip(ident)}


def attack_identities(kind: str, ident: int) -> set[str]:
    """Every client value the attack uses (its IP, its own or its victims' accounts).

    >>> sorted(attack_identities("enumeration", 5))
    ['185.220.5.17', 'attacker5']
    """
    out = {attacker_ip(ident), *attacker_identity(kind, ident).values()}
    if kind == "brute_force":
        out |= set(_BRUTE_FORCE_USERS)
    elif kind == "enumeration":
        out.add(f"attacker{ident}")
    return out


def _times(lo: int, hi: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.poisson(rate * (hi - lo) / 1000))
    return np.sort(rng.integers(lo, hi, n))


def _base(spec: AttackSpec, t: int, path: str, status: int, ip: str, n: int) -> dict[str, Any]:
    return {
        "timestamp": int(t),
        "service": spec.service,
        "environment": spec.environment,
        "method": spec.method,
        "path": path,
        "status": status,
        "duration_ms": 25.0,
        "client_ip": ip,
        "event_id": f"atk-{spec.seed}-{spec.ident}-{t}-{n}",
    }


def attack_events(
    spec: AttackSpec, lo: int, hi: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The attack's events in ``[lo, hi)``."""
    ip = attacker_ip(spec.ident)
    out: list[dict[str, Any]] = []
    for n, t in enumerate(_times(lo, hi, spec.rate, rng)):
        u = rng.random()
        e = _base(spec, t, spec.route, 401, ip, n)
        e["user_agent"] = _BROWSERS[spec.ident % len(_BROWSERS)]
        if spec.kind == "brute_force":
            e["user_id"] = _BRUTE_FORCE_USERS[int(u * len(_BRUTE_FORCE_USERS))]
            e["user_agent"] = "python-requests/2.32.3"
        elif spec.kind == "credential_stuffing":
            e["user_id"] = f"combo{spec.ident}-{int(rng.integers(0, 10**7))}@mail.example"
            e["status"] = 200 if u < 0.02 else 401
            e["user_agent"] = _BROWSERS[int(rng.integers(0, len(_BROWSERS)))]
        elif spec.kind == "distributed_stuffing":
            # A residential-proxy pool: each attempt from one of thousands of exits.
            exit_n = int(rng.integers(0, 5000))
            e["client_ip"] = (
                f"{60 + exit_n % 120}.{exit_n // 120}.{exit_n % 251}.{1 + exit_n % 253}"
            )
            e["user_id"] = f"leak{spec.ident}-{int(rng.integers(0, 10**7))}@mail.example"
            e["status"] = 200 if u < 0.03 else 401
        elif spec.kind == "enumeration":
            oid = 100_000 + int(t // 250) % 1_000_000  # a walk: ids go up with time
            e["path"] = spec.route.replace("{id}", str(oid))
            e["status"] = 200 if u < 0.25 else (403 if u < 0.6 else 404)
            e["user_id"] = f"attacker{spec.ident}"
        elif spec.kind == "scraping":
            e["path"] = spec.route.replace("{id}", str(int(rng.integers(1, 2_000_000))))
            e["status"] = 404 if u < 0.05 else 200
        elif spec.kind == "probing":
            if u < 0.4:
                e["path"] = _SENSITIVE[int(rng.integers(0, len(_SENSITIVE)))]
            else:
                words = rng.choice(_PROBE_WORDS, 2)
                e["path"] = f"/{words[0]}/{words[1]}{int(rng.integers(0, 99))}.php"
            e["method"], e["status"] = "GET", 404
            if spec.ident % 2 == 0:
                e["user_agent"] = _SCANNERS[spec.ident % len(_SCANNERS)]
        elif spec.kind == "token_sharing":
            k = int(rng.integers(0, 16))
            e["client_ip"] = f"203.{0 + k}.{113 + k}.{10 + k}"
            e["country"] = ("US", "BR", "IN", "VN")[k % 4]
            e["credential_id"] = f"key-leaked-{spec.ident}"
            e["path"] = spec.route.replace("{id}", str(int(rng.integers(1, 500))))
            e["status"] = 200
        elif spec.kind == "impossible_travel":
            home, away = _FAR_COUNTRIES[spec.ident % len(_FAR_COUNTRIES)]
            second_half = t >= (lo + hi) // 2 if hi - lo < 120_000 else u < 0.5
            e["user_id"] = f"traveller{spec.ident}"
            e["country"] = away if second_half else home
            e["client_ip"] = f"91.{spec.ident % 250}.{7 if second_half else 3}.20"
            e["path"] = spec.route.replace("{id}", str(int(rng.integers(1, 50))))
            e["status"] = 200
        out.append(e)
    return out


@dataclass(frozen=True, slots=True)
class HeavySpec:
    """A heavy but legitimate client: what it is, where it calls, its request rate."""

    kind: str
    service: str
    rate: float
    ident: int
    seed: int
    environment: str = "production"


def heavy_identity(spec: HeavySpec) -> set[str]:
    """The client values alerts would name for this heavy client."""
    if spec.kind == "carrier_nat":
        return {f"100.64.{spec.ident}.1"}
    return {f"198.18.{spec.ident}.{k}" for k in range(1, 4)} | {f"{spec.kind}-{spec.ident}"}


def heavy_events(
    spec: HeavySpec, lo: int, hi: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The heavy client's events in ``[lo, hi)``."""
    out: list[dict[str, Any]] = []
    for n, t in enumerate(_times(lo, hi, spec.rate, rng)):
        u = rng.random()
        e: dict[str, Any] = {
            "timestamp": int(t),
            "service": spec.service,
            "environment": spec.environment,
            "method": "GET",
            "duration_ms": 30.0,
            "status": 200,
            "event_id": f"heavy-{spec.seed}-{spec.ident}-{t}-{n}",
        }
        if spec.kind == "carrier_nat":
            user = int(rng.integers(0, 400))  # 400 phones behind one carrier-grade NAT
            e.update(client_ip=f"100.64.{spec.ident}.1", user_id=f"nat{spec.ident}-u{user}",
                     user_agent="shop-android/5.12.0 okhttp/4.12.0", country="DE")  # fmt: skip
            if u < 0.05:
                e.update(method="POST", path="/login", status=401 if u < 0.004 else 200)
            else:
                e.update(
                    path=f"/products/{int(rng.integers(1, 3000))}", status=404 if u > 0.99 else 200
                )
        elif spec.kind == "batch_job":
            # A reconciliation job: bursts every 15 minutes over the objects it created.
            if (t // 60_000) % 15 >= 3:
                continue
            e.update(client_ip=f"198.18.{spec.ident}.1", credential_id=f"batch_job-{spec.ident}",
                     user_agent="reconcile/2.3 (+ops)", country="US")  # fmt: skip
            if u < 0.3:
                e.update(method="POST", path="/payments", status=201)
            else:
                e.update(path=f"/payments/{int(rng.integers(1, 40))}")
        else:  # partner: an integration polling a hot set of objects from three servers
            e.update(client_ip=f"198.18.{spec.ident}.{1 + int(rng.integers(0, 3))}",
                     credential_id=f"partner-{spec.ident}", user_agent="PartnerSync/4.1",
                     country="NL")  # fmt: skip
            if u < 0.2:
                e.update(method="POST", path=f"/cart/{int(rng.integers(1, 30))}/items", status=201)
            else:
                e.update(
                    path=f"/products/{int(rng.integers(1, 40))}", status=404 if u > 0.995 else 200
                )
        out.append(e)
    return out
