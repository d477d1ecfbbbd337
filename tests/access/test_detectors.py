"""Each detector at its thresholds, inside and outside its window, through the replay."""

from __future__ import annotations

from apiwatch.models.access.config import AccessConfig
from apiwatch.models.events import RumEvent

from .helpers import background, fired, login, replay, rum

ATTACKER = "192.0.2.66"


def test_brute_force_fires_at_the_threshold_and_not_below() -> None:
    below = [login(i * 3, ATTACKER, "admin") for i in range(9)]
    at = [login(i * 3, ATTACKER, "admin") for i in range(10)]
    assert ("brute_force", ATTACKER) not in fired(replay(below))
    assert ("brute_force", ATTACKER) in fired(replay(at))


def test_brute_force_ignores_failures_spread_wider_than_its_window() -> None:
    # 10 failures, but one every 40 s: never 10 within 5 minutes.
    slow = [login(i * 40, ATTACKER, "admin") for i in range(10)]
    assert ("brute_force", ATTACKER) not in fired(replay(slow))


def test_brute_force_against_one_user_from_many_ips() -> None:
    events = [login(i * 2, f"192.0.2.{i + 1}", "ceo") for i in range(12)]
    assert ("brute_force", "ceo") in fired(replay(events))


def test_a_nat_of_real_users_mistyping_is_not_brute_force() -> None:
    # 400 logins through one carrier IP, 8 % failing: many failures, low share.
    events = [login(i * 0.5, "100.64.0.1", f"u{i % 150}", ok=i % 12 != 0) for i in range(400)]
    assert fired(replay(events)) == []


def test_stuffing_from_one_ip_needs_many_users() -> None:
    nine = [login(i, ATTACKER, f"victim{i}") for i in range(9)]
    ten = [login(i, ATTACKER, f"victim{i}") for i in range(10)]
    assert fired(replay(nine)) == []
    kinds = fired(replay(ten))
    assert ("credential_stuffing", ATTACKER) in kinds
    assert ("brute_force", ATTACKER) not in kinds


def test_distributed_stuffing_under_every_per_ip_threshold() -> None:
    normal = background(900)
    # 300 IPs, each trying 2 accounts over 10 minutes: nobody crosses a per-IP threshold.
    attack = [
        login(300 + (i * 2.0) % 600, f"10.{i // 250}.{i % 250}.9", f"leaked{i}") for i in range(600)
    ]
    out = replay(normal + attack)
    routes = [c for k, c in fired(out) if k == "credential_stuffing"]
    assert routes == ["/login"]
    (alert,) = [e.alert for e in out if e.transition == "firing"]
    assert alert.labels["service"] == "auth" and alert.evidence.top_offenders
    assert alert.evidence.details["distinct_users"] >= 20


def test_ordinary_login_failures_do_not_look_distributed() -> None:
    assert fired(replay(background(900))) == []


def test_enumeration_needs_many_ids_and_refusals() -> None:
    def walk(denied_every: int) -> list[RumEvent]:
        return [
            rum(
                i,
                client_ip=ATTACKER,
                path=f"/orders/{1000 + i}",
                status=404 if i % denied_every == 0 else 200,
            )
            for i in range(40)
        ]

    assert ("enumeration", ATTACKER) in fired(replay(walk(2)))
    # The same walk, all answered 200: a client reading its own objects.
    assert ("enumeration", ATTACKER) not in fired(replay(walk(1000)))


def test_enumeration_with_few_ids_is_quiet() -> None:
    events = [rum(i, client_ip=ATTACKER, path=f"/orders/{i % 20}", status=404) for i in range(60)]
    assert ("enumeration", ATTACKER) not in fired(replay(events))


def test_scraping_is_relative_to_the_population() -> None:
    normal = background(300, clients=60)
    crawl = [rum(i * 0.1, client_ip=ATTACKER, path=f"/products/{50_000 + i}") for i in range(2500)]
    assert ("scraping", ATTACKER) in fired(replay(normal + crawl))


def test_a_busy_client_rereading_hot_objects_is_not_scraping() -> None:
    normal = background(300, clients=60)
    partner = [
        rum(i * 0.1, client_ip=ATTACKER, credential_id="partner", path=f"/products/{i % 25}")
        for i in range(2500)
    ]
    assert fired(replay(normal + partner)) == []


def test_probing_sensitive_paths_and_scanners() -> None:
    paths = ["/.env", "/.git/config", "/wp-admin/install.php"]
    two = [rum(i, client_ip=ATTACKER, path=p, status=404) for i, p in enumerate(paths[:2])]
    three = [rum(i, client_ip=ATTACKER, path=p, status=404) for i, p in enumerate(paths)]
    assert fired(replay(two)) == []
    assert fired(replay(three)) == [("probing", ATTACKER)]
    scanner = [rum(0, client_ip=ATTACKER, user_agent="sqlmap/1.8.2#stable (https://sqlmap.org)")]
    assert fired(replay(scanner)) == [("probing", ATTACKER)]


def test_a_404_storm_needs_many_distinct_missing_paths() -> None:
    storm = [rum(i, client_ip=ATTACKER, path=f"/x{i}", status=404) for i in range(25)]
    same = [rum(i, client_ip=ATTACKER, path="/favicon.ico", status=404) for i in range(25)]
    assert fired(replay(storm)) == [("probing", ATTACKER)]
    assert fired(replay(same)) == []


def test_token_sharing_many_ips_in_several_countries() -> None:
    countries = ["US", "BR", "DE", "IN"]
    events = [
        rum(i * 30, client_ip=f"198.18.{i}.1", credential_id="key-1", country=countries[i % 2])
        for i in range(10)
    ]
    assert ("token_sharing", "key-1") in fired(replay(events))
    few = events[:9]
    assert ("token_sharing", "key-1") not in fired(replay(few))


def test_impossible_travel_and_a_plausible_trip() -> None:
    fast = [rum(i, user_id="alice", country="FR", client_ip="192.0.2.1") for i in range(3)] + [
        rum(1800 + i, user_id="alice", country="AU", client_ip="192.0.2.2") for i in range(3)
    ]
    slow = [rum(i, user_id="bob", country="FR", client_ip="192.0.2.1") for i in range(3)] + [
        rum(30 * 3600 + i, user_id="bob", country="AU", client_ip="192.0.2.2") for i in range(3)
    ]
    neighbours = [rum(i, user_id="carl", country="FR", client_ip="192.0.2.1") for i in range(3)] + [
        rum(600 + i, user_id="carl", country="DE", client_ip="192.0.2.2") for i in range(3)
    ]
    assert ("impossible_travel", "alice") in fired(replay(fast))
    assert fired(replay(slow)) == []
    assert fired(replay(neighbours)) == []


def test_allow_listed_clients_are_never_flagged() -> None:
    attack = [login(i, ATTACKER, f"victim{i}") for i in range(30)]
    attack += [
        rum(40, client_ip=ATTACKER, path="/.env"),
        rum(41, client_ip=ATTACKER, path="/.git/HEAD"),
    ]
    attack += [rum(42, client_ip=ATTACKER, path="/wp-admin/")]
    by_cidr = AccessConfig(model={"enabled": False}, allow={"ips": ["192.0.2.0/24"]})
    by_agent = AccessConfig(model={"enabled": False}, allow={"user_agents": ["HealthChecker"]})
    agent = [e.model_copy(update={"user_agent": "ELB-HealthChecker/2.0"}) for e in attack]
    assert fired(replay(attack, by_cidr)) == []
    assert fired(replay(agent, by_agent)) == []
    assert fired(replay(attack)) != []


def test_one_alert_per_incident_then_resolved_then_cooldown() -> None:
    cfg = AccessConfig(
        model={"enabled": False}, incidents={"resolve_after_s": 120, "cooldown_s": 600}
    )
    first = [login(i, ATTACKER, "admin") for i in range(100)]  # 100 s of failures
    again = [login(400 + i, ATTACKER, "admin") for i in range(30)]  # inside the cooldown
    later = [login(1500 + i, ATTACKER, "admin") for i in range(30)]  # after it
    out = replay(first + again + later, cfg)
    ip = [e.transition for e in out if e.alert.labels.get("client") == ATTACKER]
    assert ip == ["firing", "resolved", "firing", "resolved"]
    firing = [e for e in out if e.transition == "firing" and e.alert.labels["client"] == ATTACKER]
    assert firing[0].alert.evidence.sample_event_ids
    assert (
        firing[0].alert.evidence.details["first_seen"]
        < firing[0].alert.evidence.details["last_seen"]
    )
    assert len({e.event_id for e in out}) == len(out)


def test_low_and_slow_stuffing_hidden_in_a_busy_login_route() -> None:
    # 2.5 logins/s of real users, one in nine failing and logging in at the next try;
    # the attack adds one attempt every 3 s, each for an account that never logs in.
    normal = [
        login(
            c * 0.4 + k * 120,
            f"203.0.{113 + c // 250}.{c % 250 + 1}",
            f"user{c}",
            ok=(c + k) % 9 != 0,
        )
        for c in range(300)
        for k in range(13)
    ]
    attack = [login(900 + i * 3, f"10.9.{i // 200}.{i % 200 + 1}", f"gone{i}") for i in range(200)]
    out = replay(normal + attack)
    (alert,) = [e.alert for e in out if e.transition == "firing"]
    assert alert.kind.value == "credential_stuffing" and alert.labels["route"] == "/login"
    details = alert.evidence.details
    assert alert.observed is not None and alert.expected is not None
    assert alert.observed.value < alert.expected.upper  # the ratio alone stayed under its bound
    assert details["users_never_succeeding"] > 3 * details["expected_users_never_succeeding"]
    assert fired(replay(normal)) == []
