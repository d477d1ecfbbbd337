"""Link RUM and synthetic alerts on the same endpoint into one incident.

A latency spike seen by real users on ``GET /checkout`` and a synthetic check
failing on the same call are one problem, confirmed twice. The series live on
different partitions, so linking is a separate, pure step over alert
emissions: the stream runs it in a small stage keyed by endpoint
(:func:`endpoints_of` gives the keys of an alert), the backtest inline.

An endpoint is ``environment|service|method|route``. A RUM alert names one in
its labels; a synthetic alert lists the endpoints its check calls in
``evidence.details["endpoints"]`` (the check's result must carry ``service``).
When an alert fires or updates while others are firing on one of its
endpoints, its ``related`` lists their fingerprints and its ``sources`` the
union of theirs; each of those gets one ``updated`` emission saying the same,
so both sides of the incident point at each other. Overlap is judged in event
time, not in the order alerts arrive: a recently resolved alert whose span
overlaps the new one is linked too (without an ``updated`` for it, since it is
closed), so a replay or a lagging partition links the same incidents as a live run.

>>> from datetime import UTC, datetime
>>> from apiwatch.models.alerts import Alert, AlertKind, AlertStatus, Severity
>>> def em(fp, kind, src, labels, details):
...     a = Alert(fingerprint=fp, kind=kind, status=AlertStatus.FIRING, severity=Severity.ERROR,
...               summary="s", labels=labels, started_at=datetime(2026, 1, 1, tzinfo=UTC),
...               sources=[src], evidence={"details": details})
...     return Emission("firing", a, fp + "-1", datetime(2026, 1, 1, tzinfo=UTC))
>>> ep = {"environment": "production", "service": "shop", "method": "GET", "route": "/cart"}
>>> linker = IncidentLinker()
>>> linker.link(em("r1", AlertKind.LATENCY_SPIKE, "rum", ep, {}))[0].alert.related
[]
>>> out = linker.link(em("s1", AlertKind.SYNTHETIC_FAILURE, "synthetic",
...     {"environment": "production", "check": "cart"}, {"endpoints": ["production|shop|GET|/cart"]}))
>>> [(e.alert.fingerprint, e.transition, e.alert.related, e.alert.sources) for e in out]
[('s1', 'firing', ['r1'], ['rum', 'synthetic']), ('r1', 'updated', ['s1'], ['rum', 'synthetic'])]
"""

from __future__ import annotations

import hashlib
from typing import Any

from apiwatch.models.alerts import Alert, Source
from apiwatch.models.detectors.synthetic import endpoint_key
from apiwatch.models.monitor import Emission

#: Firing alerts remembered per linker; the oldest are forgotten past this.
MAX_ACTIVE = 10_000
#: Resolved alerts kept for linking by event-time overlap.
MAX_RECENT = 1_000


def endpoints_of(alert: Alert) -> list[str]:
    """The endpoints an alert concerns: its labels for RUM, its check's calls for synthetic."""
    lb = alert.labels
    if all(k in lb for k in ("environment", "service", "method", "route")):
        return [endpoint_key(lb["environment"], lb["service"], lb["method"], lb["route"])]
    listed = alert.evidence.details.get("endpoints", [])
    return [str(e) for e in listed] if isinstance(listed, list) else []


class IncidentLinker:
    """Remembers firing alerts per endpoint and cross-links those that coincide."""

    def __init__(self) -> None:
        self.active: dict[str, Alert] = {}  # fingerprint -> latest firing alert
        self.recent: dict[str, Alert] = {}  # fingerprint -> last resolved alert

    def link(self, emission: Emission) -> list[Emission]:
        """The emission, enriched with its related alerts, plus updates of those alerts."""
        alert = emission.alert
        fp = alert.fingerprint
        if emission.transition == "resolved":
            self.active.pop(fp, None)
            self.recent.pop(fp, None)
            self.recent[fp] = alert
            while len(self.recent) > MAX_RECENT:
                self.recent.pop(next(iter(self.recent)))
            return [emission]
        mine = set(endpoints_of(alert))
        others = [
            a
            for other_fp, a in self.active.items()
            if other_fp != fp and mine.intersection(endpoints_of(a))
        ]
        closed = [
            a
            for other_fp, a in self.recent.items()
            if other_fp != fp
            and other_fp not in self.active
            and a.resolved_at is not None
            and a.resolved_at >= alert.started_at
            and mine.intersection(endpoints_of(a))
        ]
        related = sorted({*alert.related, *(a.fingerprint for a in [*others, *closed])})
        sources = _sources(alert.sources, *(a.sources for a in [*others, *closed]))
        linked = alert.model_copy(update={"related": related, "sources": sources})
        out = [Emission(emission.transition, linked, emission.event_id, emission.time)]
        for other in others:
            if fp in other.related and set(other.sources) >= set(sources):
                continue
            updated = other.model_copy(
                update={
                    "related": sorted({*other.related, fp}),
                    "sources": _sources(other.sources, sources),
                }
            )
            self.active[other.fingerprint] = updated
            material = f"{other.fingerprint}|linked|{fp}|{emission.time.isoformat()}".encode()
            event_id = hashlib.blake2b(material, digest_size=16).hexdigest()
            out.append(Emission("updated", updated, event_id, emission.time))
        self.active.pop(fp, None)
        self.active[fp] = linked
        while len(self.active) > MAX_ACTIVE:
            self.active.pop(next(iter(self.active)))
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "active": [a.model_dump(mode="json") for a in self.active.values()],
            "recent": [a.model_dump(mode="json") for a in self.recent.values()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IncidentLinker:
        linker = cls()
        for data in state.get("active", []):
            alert = Alert.model_validate(data)
            linker.active[alert.fingerprint] = alert
        for data in state.get("recent", []):
            alert = Alert.model_validate(data)
            linker.recent[alert.fingerprint] = alert
        return linker


def _sources(*groups: list[Source]) -> list[Source]:
    order: list[Source] = ["rum", "synthetic"]
    present = {s for group in groups for s in group}
    return [s for s in order if s in present]
