"""Unit tests for the pure delivery logic: matchers, routes, groups, dedup, muting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from apiwatch.models.alerts import AlertKind, AlertStatus
from apiwatch.models.delivery.config import DeliveryConfig, InhibitRuleConfig, RouteConfig
from apiwatch.models.delivery.dedup import NotifyRecord, needs_notify
from apiwatch.models.delivery.grouping import AggregationGroup
from apiwatch.models.delivery.inhibit import Inhibitor
from apiwatch.models.delivery.matchers import Matcher, alert_labels
from apiwatch.models.delivery.routing import build_tree, group_key, match_routes
from apiwatch.models.delivery.silence import Silence, Silences

from .helpers import alert_event

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("service=shop", {"service": "shop"}, True),
        ("service=shop", {"service": "shopping"}, False),
        ("service!=shop", {}, True),
        ("route=~/users/.*", {"route": "/users/{id}"}, True),
        ("route=~/users", {"route": "/users/{id}"}, False),  # anchored
        ("route!~/admin.*", {"route": "/users"}, True),
        ('team="a b"', {"team": "a b"}, True),
        ("team=", {}, True),  # a missing label is the empty string
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["service", "=x", "a=~("])
def test_bad_matchers_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="matcher"):
        Matcher.parse(text)


def tree() -> RouteConfig:
    return RouteConfig.model_validate(
        {
            "receiver": "default",
            "group_wait_s": 10,
            "routes": [
                {
                    "matchers": ["kind=~brute_force|probing"],
                    "receiver": "security",
                    "group_by": ["kind"],
                    "continue": True,
                    "routes": [{"matchers": ["severity=critical"], "receiver": "pager"}],
                },
                {"matchers": ["service=shop"], "receiver": "shop", "group_wait_s": 1},
                {"matchers": ["service=shop"], "receiver": "never"},
            ],
        }
    )


def test_routes_match_first_child_continue_and_nest() -> None:
    root = build_tree(tree())
    hit = match_routes(root, {"kind": "probing", "severity": "critical", "service": "shop"})
    assert [(r.id, r.receiver) for r in hit] == [("0.0.0", "pager"), ("0.1", "shop")]
    # Without continue the second "service=shop" sibling is never reached.
    assert [r.receiver for r in match_routes(root, {"service": "shop"})] == ["shop"]
    assert [r.receiver for r in match_routes(root, {"service": "cart"})] == ["default"]


def test_children_inherit_unset_options() -> None:
    root = build_tree(tree())
    security, shop = root.children[0], root.children[1]
    pager = security.children[0]
    assert (pager.group_by, pager.group_wait_s) == (("kind",), 10.0)
    assert (shop.group_by, shop.group_wait_s) == (("service", "environment"), 1.0)
    assert root.repeat_interval_s == 4 * 3600.0


def test_group_key_uses_route_and_group_labels() -> None:
    root = build_tree(RouteConfig(receiver="r", group_by=["service"]))
    a = group_key(root, {"service": "shop", "route": "/a"})
    assert a == group_key(root, {"service": "shop", "route": "/b"})
    assert a != group_key(root, {"service": "cart"})
    everything = build_tree(RouteConfig(receiver="r", group_by=["..."]))
    assert group_key(everything, {"a": "1"}) != group_key(everything, {"a": "1", "b": "2"})


def test_config_rejects_unknown_receivers_bad_names_and_unknown_keys() -> None:
    with pytest.raises(
        ValidationError, match=r"unknown receiver 'pager'.*configured receivers: hook"
    ):
        DeliveryConfig.model_validate(
            {
                "receivers": {"hook": {"type": "webhook", "url": "http://x"}},
                "route": {"receiver": "hook", "routes": [{"receiver": "pager"}]},
            }
        )
    with pytest.raises(ValidationError, match="pattern"):
        DeliveryConfig.model_validate(
            {"receivers": {"On-Call": {"type": "webhook", "url": "http://x"}}}
        )
    with pytest.raises(ValidationError, match="Extra inputs"):
        DeliveryConfig.model_validate({"route": {"receivr": "x"}})
    with pytest.raises(ValidationError, match="http"):
        DeliveryConfig.model_validate({"receivers": {"a": {"type": "webhook", "url": "ftp://x"}}})
    with pytest.raises(ValidationError, match="routing_key"):
        DeliveryConfig.model_validate({"receivers": {"pd": {"type": "pagerduty"}}})


def test_secrets_come_from_the_environment_and_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    from apiwatch.settings import load_settings

    monkeypatch.setenv("APIWATCH_DELIVERY__RECEIVERS__ONCALL__ROUTING_KEY", "env-routing-key")
    settings = load_settings(
        overrides={"delivery": {"receivers": {"oncall": {"type": "pagerduty"}}}}
    )
    receiver = settings.delivery.receivers["oncall"]
    assert receiver.secrets() == ["env-routing-key"]
    assert "env-routing-key" not in repr(settings) and "env-routing-key" not in str(receiver)


def test_group_waits_then_flushes_every_interval() -> None:
    route = build_tree(RouteConfig(receiver="r", group_wait_s=5, group_interval_s=60))
    group = AggregationGroup("k", route, {}, now=0.0)
    first = alert_event({"service": "a", "route": "/1"})
    group.insert(first, now=0.0)
    assert not group.due(4.9) and group.due(5.0)
    assert group.flush(5.0) == [first]
    group.insert(alert_event({"service": "a", "route": "/2"}), now=6.0)
    assert not group.due(64.9) and group.due(65.0)


def test_group_forgets_notified_resolved_alerts_but_keeps_newer_ones() -> None:
    route = build_tree(RouteConfig(receiver="r"))
    group = AggregationGroup("k", route, {}, now=0.0)
    labels = {"service": "a", "route": "/1"}
    group.insert(alert_event(labels, status=AlertStatus.RESOLVED), now=0.0)
    snapshot = group.flush(30.0)
    refired = alert_event(labels)
    group.insert(refired, now=31.0)  # fired again after the snapshot
    group.forget_resolved(snapshot)
    assert list(group.alerts.values()) == [refired]
    group.forget_resolved(group.flush(400.0))
    assert not group.empty  # firing alerts stay


def test_an_older_emission_never_replaces_a_newer_one() -> None:
    group = AggregationGroup("k", build_tree(RouteConfig(receiver="r")), {}, now=0.0)
    labels = {"service": "a"}
    old = alert_event(labels)
    new = alert_event(labels, status=AlertStatus.RESOLVED)
    group.insert(new, now=0.0)
    group.insert(old.model_copy(update={"time": new.time - timedelta(seconds=1)}), now=0.0)
    assert group.alerts[new.subject] is new


@pytest.mark.parametrize(
    ("last", "firing", "resolved", "now", "send_resolved", "expected"),
    [
        (None, {"a"}, set(), 0.0, True, True),
        (None, set(), {"a"}, 0.0, False, False),
        (NotifyRecord(frozenset({"a"}), frozenset(), 0.0), {"a"}, set(), 10.0, True, False),
        (NotifyRecord(frozenset({"a"}), frozenset(), 0.0), {"a", "b"}, set(), 10.0, True, True),
        (NotifyRecord(frozenset({"a", "b"}), frozenset(), 0.0), {"a"}, {"b"}, 10.0, False, False),
        (NotifyRecord(frozenset({"a", "b"}), frozenset(), 0.0), {"a"}, {"b"}, 10.0, True, True),
        (NotifyRecord(frozenset({"a"}), frozenset(), 0.0), set(), {"a"}, 10.0, False, True),
        (NotifyRecord(frozenset({"a"}), frozenset(), 0.0), {"a"}, set(), 100.0, True, True),
    ],
    ids=[
        "first-firing",
        "first-resolved-unwanted",
        "unchanged",
        "new-firing",
        "resolved-unwanted",
        "resolved-wanted",
        "all-resolved",
        "repeat-interval",
    ],
)
def test_dedup_rules(
    last: NotifyRecord | None,
    firing: set[str],
    resolved: set[str],
    now: float,
    send_resolved: bool,
    expected: bool,
) -> None:
    assert (
        needs_notify(
            last,
            firing=firing,
            resolved=resolved,
            now=now,
            repeat_interval_s=100.0,
            send_resolved=send_resolved,
        )
        is expected
    )


def test_silences_window_and_newest_version_wins() -> None:
    alert = alert_event({"service": "shop"}).data
    pending = Silence.create(
        ["service=shop"],
        starts_at=NOW + timedelta(hours=1),
        ends_at=NOW + timedelta(hours=2),
        created_by="ana",
        comment="later",
        now=NOW,
    )
    silences = Silences([pending])
    assert not silences.mutes(alert, NOW)
    assert silences.mutes(alert, NOW + timedelta(hours=1, minutes=1))
    expired = pending.expire(NOW + timedelta(minutes=1))
    assert expired.state(NOW + timedelta(minutes=1)) == "expired"
    silences.upsert(expired)
    assert not silences.upsert(pending)  # an older version replayed late loses
    assert not silences.mutes(alert, NOW + timedelta(hours=1, minutes=1))
    with pytest.raises(ValidationError):
        Silence.create([], ends_at=NOW, created_by="a", comment="c", now=NOW)


def test_inhibition_needs_equal_labels_and_a_firing_source() -> None:
    rule = InhibitRuleConfig(
        source_matchers=["kind=synthetic_failure"],
        target_matchers=["kind=latency_spike"],
        equal=["service", "route"],
    )
    source = alert_event({"service": "a", "route": "/x"}, kind=AlertKind.SYNTHETIC_FAILURE).data
    firing = [source]
    inhibitor = Inhibitor([rule], firing=lambda: firing)
    assert inhibitor.mutes(alert_event({"service": "a", "route": "/x"}).data, NOW)
    assert not inhibitor.mutes(alert_event({"service": "b", "route": "/x"}).data, NOW)
    assert not inhibitor.mutes(source, NOW)  # a source never inhibits itself
    firing.clear()
    assert not inhibitor.mutes(alert_event({"service": "a", "route": "/x"}).data, NOW)


def test_match_labels_include_kind_and_severity() -> None:
    labels = alert_labels(alert_event({"service": "a"}, kind=AlertKind.PROBING).data)
    assert labels == {"service": "a", "kind": "probing", "severity": "error"}
