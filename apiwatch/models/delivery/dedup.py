"""Whether a group needs a notification now: Alertmanager's notification-log rules.

A receiver hears about a group again when a new alert fires in it, when
alerts resolve (if it wants resolved notifications), when everything
resolved, or when ``repeat_interval`` passed with alerts still firing.

>>> first = needs_notify(None, firing={"a"}, resolved=set(), now=0.0,
...                      repeat_interval_s=3600, send_resolved=True)
>>> sent = NotifyRecord(frozenset({"a"}), frozenset(), sent_at=0.0)
>>> again = needs_notify(sent, firing={"a"}, resolved=set(), now=60.0,
...                      repeat_interval_s=3600, send_resolved=True)
>>> resolved = needs_notify(sent, firing=set(), resolved={"a"}, now=60.0,
...                         repeat_interval_s=3600, send_resolved=True)
>>> first, again, resolved
(True, False, True)
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass


@dataclass(frozen=True)
class NotifyRecord:
    """What was last sent for one (group, receiver): fingerprints, when, and how often
    the very same alert events went out (reminders need ids of their own)."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float
    event_ids: frozenset[str] = frozenset()
    repeat: int = 0


def needs_notify(
    last: NotifyRecord | None,
    *,
    firing: Set[str],
    resolved: Set[str],
    now: float,
    repeat_interval_s: float,
    send_resolved: bool,
) -> bool:
    """True when the receiver should be told about the group's current alerts."""
    if last is None:
        # Unlike Alertmanager, a resolved-only group with no record is notified too:
        # the record lives in memory, and after a restart a resolve must still reach
        # PagerDuty or Opsgenie or the incident there stays open.
        return bool(firing) or (send_resolved and bool(resolved))
    if not firing <= last.firing:
        return True
    if last.firing and not firing:
        return True
    if send_resolved and not resolved <= last.resolved:
        return True
    return bool(firing) and now - last.sent_at >= repeat_interval_s
