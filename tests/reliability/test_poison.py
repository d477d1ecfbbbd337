"""Hostile input on every input topic: each message processed or dead-lettered, the worker lives.

A generator of hostile messages (invalid UTF-8, deep nesting, 1 MB and 10 MB values,
wrong types in every field, NaN/Infinity, huge numbers, control characters, far past
and future timestamps) plus hypothesis-generated JSON objects go to the RUM, synthetic
and OTLP topics of one worker. For RUM and synthetic, valid events in plus dead
letters equals messages sent; every undecodable OTLP export is dead-lettered; the
worker stays healthy and its resident memory bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiwatch.models.deadletter import DeadLetter
from apiwatch.settings import Settings
from apiwatch.streams.kafka import make_producer
from tests.kafka_helpers import WorkerProcess, eventually
from tests.reliability.harness import (
    create_topics,
    metrics,
    read_topic,
    rss_kb,
    run_settings,
    start,
    stop,
    total,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

MB = 1 << 20


def valid_rum(now_ms: int) -> dict[str, Any]:
    return {
        "timestamp": now_ms - 60_000,
        "service": "fuzz",
        "method": "GET",
        "path": "/a/1",
        "route": "/a/{id}",
        "status": 200,
        "duration_ms": 12.5,
        "client_ip": "10.1.2.3",
    }


def valid_synthetic(now_ms: int) -> dict[str, Any]:
    return {
        "check_id": "fuzz",
        "check_name": "fuzz",
        "run_id": "r1",
        "location": "eu-west",
        "timestamp": now_ms - 60_000,
        "status": "passed",
        "duration_ms": 10.0,
        "steps": [
            {
                "name": "s",
                "method": "GET",
                "url": "http://x/a",
                "route": "/a",
                "status_code": 200,
                "duration_ms": 10.0,
            }
        ],
    }


WRONG = [None, True, [], {}, "x", -1, 1e308, "\x00\x07\x1b", [1, [2, [3]]], {"a": {"b": 1}}]


def hostile(base: dict[str, Any], max_bytes: int) -> list[bytes]:
    """Messages no consumer of ``base``'s topic should accept, one of each kind of trouble."""
    out = [
        b"\xff\xfe\xfa not utf-8 \xc3\x28",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b"",
        b"null",
        b"[]",
        b"[1, 2, {}]",
        b'{"timestamp": NaN, "duration_ms": Infinity}',
        (orjson.dumps(base)[:-1] + b', "duration_ms": 1e400}'),
        (orjson.dumps(base)[:-1] + b', "status": 1' + b"0" * 400 + b"}"),
        orjson.dumps({**base, "service": "a\x00b\x1b[31m\u202e", "path": "/\x07"}),
        orjson.dumps({**base, "timestamp": "0001-01-01T00:00:00Z"}),
        orjson.dumps({**base, "timestamp": "9999-12-31T23:59:59Z"}),
        orjson.dumps({**base, "timestamp": -(10**15)}),
        orjson.dumps({**base, "timestamp": 10**18}),
        b'{"x": "' + b"y" * (MB - 32) + b'"}',
        b'{"x": "' + b"y" * (max_bytes - 64) + b'"}',
    ]
    for key in base:
        for bad in WRONG:
            if base[key] != bad:
                out.append(orjson.dumps({**base, key: bad}))
    return out


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)


def generated_objects(fields: list[str], n: int) -> list[bytes]:
    """``n`` JSON objects from hypothesis: the contract's own keys with arbitrary values, or any."""
    found: list[bytes] = []
    obj = st.one_of(
        st.dictionaries(st.sampled_from(fields), JSON, min_size=1),
        st.dictionaries(st.text(max_size=12), JSON),
    )

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(obj)
    def collect(value: dict[str, Any]) -> None:
        found.append(json.dumps(value).encode())  # json: integers past 64 bits too

    collect()
    return found[:n]


async def largest_accepted(s: Settings, topic: str) -> int:
    """The largest value the broker takes (10 MB if it can), for the hostile sizes."""
    producer = make_producer(s.kafka, max_request_size=16 * MB)
    await producer.start()
    try:
        for size in (10 * MB, 8 * MB, 4 * MB, 2 * MB, MB):
            try:
                await producer.send_and_wait(topic, b"{" + b" " * (size - 2) + b"}", key=b"probe")
                return size
            except Exception:
                continue
    finally:
        await producer.stop()
    return MB // 2


@pytest.fixture(scope="module")
def fuzzed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    s = run_settings(kafka_bootstrap, "fuzz")
    d: Path = tmp_path_factory.mktemp("fuzz")

    async def main() -> dict[str, Any]:
        await create_topics(s)
        t = s.topics
        biggest = await largest_accepted(s, t.otlp)  # one probe message per size tried
        now = int(time.time() * 1000)
        rum_base, syn_base = valid_rum(now), valid_synthetic(now)
        sent: dict[str, list[bytes]] = {
            t.rum: hostile(rum_base, biggest)
            + generated_objects([*rum_base, "event_id", "user_id", "country"], 150)
            + [orjson.dumps({**rum_base, "event_id": f"ok{i}"}) for i in range(20)],
            t.synthetic: hostile(syn_base, biggest)
            + generated_objects(list(syn_base), 60)
            + [orjson.dumps({**syn_base, "run_id": f"ok{i}"}) for i in range(5)],
            t.otlp: [b"\xff\x00garbage", b'{"resourceSpans": 7}', b"\x0a\xff\xff\xff\xff\x0f"],
        }
        w = WorkerProcess(s, d, "ingest", "detect", "otlp")
        await start(w)
        rss_before = rss_kb(w.proc.pid) if w.proc else 0
        producer = make_producer(s.kafka, max_request_size=16 * MB)
        await producer.start()
        try:
            for topic, values in sent.items():
                for i, v in enumerate(values):
                    await producer.send(topic, v, key=f"k{i % 7}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        n_in = {k: len(v) for k, v in sent.items()}
        n_in[t.otlp] += 1  # the size probe landed there too

        consumed: list[float] = []

        async def all_consumed() -> dict[str, float] | None:
            nonlocal consumed
            m = await metrics(w)
            consumed = [total(m, "apiwatch_messages_in_total", f'topic="{x}"') for x in sent]
            return m if consumed[:2] == [n_in[t.rum], n_in[t.synthetic]] else None

        m = await eventually(
            "every message consumed",
            all_consumed,
            90,
            interval_s=0.5,
            context=lambda: f"consumed {consumed} of {dict(n_in)}\n{w.log_tail()}",
        )
        letters = await read_topic(s, t.deadletter, within_s=60)
        m = await metrics(w)
        health = await asyncio.to_thread(w.health)
        rss_after = rss_kb(w.proc.pid) if w.proc else 0
        out = {
            "sent": n_in,
            "biggest": biggest,
            "letters": [DeadLetter.model_validate_json(r.value) for r in letters],
            "events_in": {
                t.rum: total(m, "apiwatch_events_in_total", f'topic="{t.rum}"'),
                t.synthetic: total(m, "apiwatch_events_in_total", f'topic="{t.synthetic}"'),
            },
            "health": health,
            "alive": w.alive,
            "rss_kb": (rss_before, rss_after),
            "log": w.log_tail(80),
        }
        await stop(w, "TERM")
        return out

    out = asyncio.run(main())
    figures = {
        "sent": out["sent"],
        "events_in": out["events_in"],
        "dead_letters": dict(Counter(dl.origin.topic for dl in out["letters"])),
        "largest_value_bytes": out["biggest"],
        "rss_kb_before_after": out["rss_kb"],
    }
    (tmp_path_factory.getbasetemp() / "reliability-fuzz.json").write_text(json.dumps(figures))
    yield out


def test_every_message_is_processed_or_dead_lettered_with_a_reason(fuzzed: dict[str, Any]) -> None:
    by_topic = Counter(dl.origin.topic for dl in fuzzed["letters"])
    for topic, events in fuzzed["events_in"].items():
        sent = fuzzed["sent"][topic]
        assert events + by_topic[topic] == sent, (topic, events, by_topic[topic], sent)
    assert all(dl.reason and dl.detail for dl in fuzzed["letters"])
    # Each undecodable OTLP export is dead-lettered too (the three hostile ones; the
    # size probe, an empty JSON object padded with spaces, may convert to nothing).
    otlp = next(t for t in fuzzed["sent"] if t.endswith(".otlp"))
    assert by_topic[otlp] >= 3, by_topic


def test_worker_stays_alive_healthy_and_bounded(fuzzed: dict[str, Any]) -> None:
    assert fuzzed["alive"], fuzzed["log"]
    assert fuzzed["health"] and fuzzed["health"]["ok"], fuzzed["health"]
    before, after = fuzzed["rss_kb"]
    # A 10 MB message is held a few times over while decoded and dead-lettered; the
    # bound is generous but catches keeping the inputs (hundreds of MB).
    assert after < before + 200 * 1024, (before, after)
    assert fuzzed["biggest"] >= MB
