"""Everything that watches one client, or one login route: state, detectors, incidents.

:class:`ClientTracker` is what the access-detect stage keeps per client in a
changelog-backed table and what the replay keeps in a dict: the same object,
the same code. It merges each micro-window record, asks every detector that
applies to the client's kind, and lets the incident book turn findings into at
most one firing and one resolved alert per kind and incident.
:class:`LoginRouteTracker` does the same for one login route with the
distributed-stuffing detector.

>>> from apiwatch.models.access.config import AccessConfig
>>> from apiwatch.models.access.records import ClientWindow
>>> cfg = AccessConfig()
>>> t = ClientTracker(cfg, "production|ip|203.0.113.9", client_detectors(cfg))
>>> rec = ClientWindow(client=t.client, start_ms=0, end_ms=10_000, first_ms=0, last_ms=9_000,
...     count=3, sensitive=["/.env", "/.git/HEAD", "/wp-admin/"], samples=["ev-1"])
>>> [(e.transition, e.alert.kind.value, e.alert.labels["client"]) for e in t.observe(rec)]
[('firing', 'probing', '203.0.113.9')]
>>> t.observe(rec)
[]
"""

from __future__ import annotations

from typing import Any

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.access.detectors.base import ClientDetector, Finding
from apiwatch.models.access.detectors.brute_force import BruteForce
from apiwatch.models.access.detectors.enumeration import Enumeration
from apiwatch.models.access.detectors.probing import Probing
from apiwatch.models.access.detectors.scraping import Scraping
from apiwatch.models.access.detectors.stuffing import CredentialStuffing
from apiwatch.models.access.detectors.token_sharing import TokenSharing
from apiwatch.models.access.detectors.travel import ImpossibleTravel
from apiwatch.models.access.emit import emission
from apiwatch.models.access.incidents import IncidentBook
from apiwatch.models.access.records import ClientWindow, LoginWindow
from apiwatch.models.access.route_stuffing import DistributedStuffing, LoginRouteState
from apiwatch.models.access.state import ClientState
from apiwatch.models.alerts import AlertKind, Observed, Severity
from apiwatch.models.monitor import Emission

STATE_VERSION = 1


def client_detectors(cfg: AccessConfig) -> list[ClientDetector]:
    """The enabled rule detectors, built from config (stateless, shared by all clients)."""
    out: list[tuple[bool, ClientDetector]] = [
        (cfg.brute_force.enabled, BruteForce(cfg.brute_force, cfg.stuffing)),
        (cfg.stuffing.enabled, CredentialStuffing(cfg.stuffing)),
        (cfg.enumeration.enabled, Enumeration(cfg.enumeration)),
        (cfg.scraping.enabled, Scraping(cfg.scraping, cfg.fold)),
        (cfg.probing.enabled, Probing(cfg.probing)),
        (cfg.token_sharing.enabled, TokenSharing(cfg.token_sharing)),
        (cfg.travel.enabled, ImpossibleTravel(cfg.travel)),
    ]
    return [d for enabled, d in out if enabled]


def _finding_state(f: Finding) -> dict[str, Any]:
    # What a later "resolved" needs to name the incident it closes.
    return {
        "summary": f.summary,
        "severity": f.severity.value,
        "labels": f.labels,
        "observed": f.observed.model_dump(),
        "score": f.score,
    }


def _finding_from(kind: str, s: dict[str, Any]) -> Finding:
    return Finding(
        kind=AlertKind(kind),
        summary=s["summary"],
        observed=Observed.model_validate(s["observed"]),
        score=float(s["score"]),
        severity=Severity(s["severity"]),
        labels=dict(s["labels"]),
    )


class ClientTracker:
    """Sliding state, rule detectors and incidents of one client; JSON-able."""

    def __init__(
        self,
        cfg: AccessConfig,
        client: str,
        detectors: list[ClientDetector],
        state: ClientState | None = None,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.state = state or ClientState(client, cfg)
        self.detectors = [d for d in detectors if self.state.kind in d.applies_to]
        self.book = IncidentBook(
            cfg.incidents,
            cooldowns={AlertKind.ANOMALOUS_CLIENT.value: cfg.incidents.model_cooldown_s},
        )
        self.findings: dict[str, dict[str, Any]] = {}

    @property
    def identity(self) -> dict[str, str]:
        s = self.state
        return {"environment": s.environment, "client_kind": s.kind.value, "client": s.value}

    def observe(self, record: ClientWindow) -> list[Emission]:
        """Merge one record, judge with every detector, return alert transitions."""
        # An incident that went quiet before this record ended there, whether or not
        # a sweep saw the gap (records of a long stretch can arrive in one batch).
        out: list[Emission] = self.expire(record.first_ms)
        self.state.merge(record)
        now = self.state.last_seen_ms or record.last_ms
        for detector in self.detectors:
            finding = detector.judge(self.state, now)
            em = self._step(detector.kind.value, finding, now)
            if em is not None:
                out.append(em)
        return out

    def flag(self, finding: Finding | None, now_ms: int) -> Emission | None:
        """Feed a finding (or its absence) from outside the rule detectors (the model)."""
        return self._step(AlertKind.ANOMALOUS_CLIENT.value, finding, now_ms)

    def _step(self, kind: str, finding: Finding | None, now: int) -> Emission | None:
        step = self.book.step(kind, finding is not None, now)
        if step is None:
            return None
        if step == "firing":
            assert finding is not None
            self.findings[kind] = _finding_state(finding)
            return self._emit(finding, "firing", now)
        return self._resolved(kind, now)

    def _resolved(self, kind: str, now: int) -> Emission | None:
        saved = self.findings.pop(kind, None)
        if saved is None:
            return None
        return self._emit(_finding_from(kind, saved), "resolved", now)

    def _emit(self, finding: Finding, transition: Any, now: int) -> Emission:
        labels = dict(finding.labels)
        service = self.state.main_service()
        if "service" not in labels and service is not None:
            labels["service"] = service
        finding = Finding(
            kind=finding.kind,
            summary=finding.summary,
            observed=finding.observed,
            score=finding.score,
            severity=finding.severity,
            expected=finding.expected,
            labels=labels,
            details=finding.details,
            offenders=finding.offenders,
            sample_event_ids=finding.sample_event_ids,
        )
        started = self.book.started_ms(finding.kind.value) or now
        return emission(
            finding,
            transition,
            self.identity,
            t_ms=now,
            started_ms=started,
            samples=list(self.state.samples),
            first_seen_ms=self.state.first_seen_ms,
            last_seen_ms=self.state.last_seen_ms,
        )

    def expire(self, now_ms: int) -> list[Emission]:
        """Resolve incidents quiet for long enough (a sweep: the client may have gone away)."""
        out = []
        for kind in self.book.expire(now_ms):
            em = self._resolved(kind, now_ms)
            if em is not None:
                out.append(em)
        self.book.forget_quiet(now_ms)
        return out

    @property
    def open_incidents(self) -> list[str]:
        return self.book.open

    def to_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "state": self.state.to_state(),
            "incidents": self.book.to_state(),
            "findings": self.findings,
        }

    @classmethod
    def from_state(
        cls, cfg: AccessConfig, detectors: list[ClientDetector], state: dict[str, Any]
    ) -> ClientTracker:
        inner = state["state"]
        t = cls(cfg, inner["client"], detectors, ClientState.from_state(cfg, inner))
        t.book.load_state(state.get("incidents", {}))
        t.findings = dict(state.get("findings", {}))
        return t


class LoginRouteTracker:
    """Route-level login state, the distributed-stuffing detector and its incidents."""

    def __init__(self, cfg: AccessConfig, route: str) -> None:
        self.cfg = cfg
        self.state = LoginRouteState(route, cfg.stuffing)
        self.detector = DistributedStuffing(cfg.stuffing)
        self.book = IncidentBook(cfg.incidents)
        self.finding: dict[str, Any] | None = None

    def observe(self, record: LoginWindow) -> list[Emission]:
        self.state.merge(record)
        if not self.cfg.stuffing.enabled:
            return []
        now = self.state.last_ms
        finding = self.detector.judge(self.state, now)
        if finding is not None:
            self.state.mark_abnormal(record.start_ms)
        kind = finding.kind.value if finding else AlertKind.CREDENTIAL_STUFFING.value
        step = self.book.step(kind, finding is not None, now)
        if step == "firing" and finding is not None:
            self.finding = _finding_state(finding)
            return [self._emit(finding, "firing", now)]
        if step == "resolved" and self.finding is not None:
            resolved = _finding_from(kind, self.finding)
            self.finding = None
            return [self._emit(resolved, "resolved", now)]
        return []

    def _emit(self, finding: Finding, transition: Any, now: int) -> Emission:
        started = self.book.started_ms(finding.kind.value) or now
        return emission(finding, transition, self.state.labels, t_ms=now, started_ms=started)

    def to_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "state": self.state.to_state(),
            "incidents": self.book.to_state(),
            "finding": self.finding,
        }

    @classmethod
    def from_state(cls, cfg: AccessConfig, state: dict[str, Any]) -> LoginRouteTracker:
        inner = state["state"]
        t = cls(cfg, inner["route"])
        t.state = LoginRouteState.from_state(cfg.stuffing, inner)
        t.book.load_state(state.get("incidents", {}))
        t.finding = state.get("finding")
        return t
