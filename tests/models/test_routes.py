"""Route templating: placeholders, what stays literal, and the properties the stream relies on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiwatch.models.routes import MAX_PATH, template_route, template_segment

FAST = settings(max_examples=150, deadline=None)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        # decimal integers of any size, signed too
        ("0", "{id}"),
        ("42", "{id}"),
        ("-12", "{id}"),
        ("0000000000000000000000000000000001", "{id}"),
        # short mixed letter-digit keys
        ("ab12cd", "{id}"),
        ("SKU-1234", "{id}"),
        # UUIDs in any case, with or without dashes
        ("7f3e9a1c-5b2d-4e8f-9a6b-1c2d3e4f5a6b", "{uuid}"),
        ("7F3E9A1C-5B2D-4E8F-9A6B-1C2D3E4F5A6B", "{uuid}"),
        ("7f3e9a1c5b2d4e8f9a6b1c2d3e4f5a6b", "{uuid}"),
        # hex digests of 16+ characters
        ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "{hash}"),
        ("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B", "{hash}"),
        ("abcdefabcdef0123", "{hash}"),
        # long opaque tokens
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123", "{token}"),
        ("AbCdEfGhIjKlMnOpQrSt_9", "{token}"),
        # ISO dates
        ("2026-11-26", "{date}"),
    ],
)
def test_variable_segments_become_placeholders(segment: str, expected: str) -> None:
    assert template_segment(segment) == expected
    assert template_route(f"/api/{segment}/x") == f"/api/{expected}/x"


@pytest.mark.parametrize(
    "segment",
    [
        "users",
        "me",
        "api",
        "orders",
        "user-profile",
        "snake_case_name",
        "a1",  # one digit is not an id
        "oauth2",
        "deadbeefdeadbeefdeadbeef",  # hex letters only: no digit, so a word
        "abcdefghijklmnopqrstuvwxyz",  # long, but no digit: not a token
        "{id}",  # already a placeholder
        "",
    ],
)
def test_words_stay_literal(segment: str) -> None:
    assert template_segment(segment) == segment


@pytest.mark.parametrize("version", ["v1", "v2", "V3", "v10", "v999", "v1.2", "v2.0.1"])
def test_versions_stay_literal(version: str) -> None:
    assert template_route(f"/api/{version}/users/me") == f"/api/{version}/users/me"


@pytest.mark.parametrize("version", ["v1beta1", "v2alpha1", "v1beta", "v3rc2"])
def test_prerelease_api_versions_stay_literal(version: str) -> None:
    # /apis/batch/v1beta1/jobs and /apis/batch/v2beta2/jobs are different endpoints.
    assert template_route(f"/apis/batch/{version}/jobs") == f"/apis/batch/{version}/jobs"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/users/42/orders/7f3e9a1c-5b2d-4e8f-9a6b-1c2d3e4f5a6b", "/users/{id}/orders/{uuid}"),
        ("/users/42/", "/users/{id}/"),  # the trailing slash is kept
        ("//a//1", "//a//{id}"),  # empty segments are kept
        ("/reports/2026-01-31/items/17", "/reports/{date}/items/{id}"),
    ],
)
def test_whole_paths(path: str, expected: str) -> None:
    assert template_route(path) == expected


# -- properties -----------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=24).filter(
    # a run of hex letters shaped like a uuid is not a word anyone would route on
    lambda w: any(c not in HEX for c in w)
)
_word_seg = st.one_of(
    _word,
    st.builds(lambda a, b: f"{a}-{b}", _word, _word),
    st.builds(lambda a, b: f"{a}_{b}", _word, _word),
    st.sampled_from(["v1", "v2", "v10", "v1.1", "api", "me", "search", "oauth2"]),
)
_numeric = st.integers(min_value=0, max_value=10**300).map(str) | st.text(
    alphabet="0123456789", min_size=1, max_size=400
)
_uuid = st.uuids().map(str) | st.uuids().map(lambda u: u.hex.upper())
_hash = (
    st.binary(min_size=8, max_size=64).map(bytes.hex).filter(lambda h: any(c.isdigit() for c in h))
)
_date = st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)
_any_seg = st.one_of(
    _word_seg,
    _numeric,
    _uuid,
    _hash,
    _date,
    st.text(alphabet="abcXYZ0123456789-_.~%+=", min_size=0, max_size=40),
    st.text(max_size=12),
)


def _path(segments: list[str]) -> str:
    return "/" + "/".join(segments)


@FAST
@given(st.lists(_any_seg, max_size=12).map(_path))
def test_templating_is_idempotent(path: str) -> None:
    once = template_route(path)
    assert template_route(once) == once


_short_var = st.sampled_from(["1", "22", "333", "ab12", "2026-11-26", "users", "v2"])


_long_path = st.builds(
    lambda seg, n, tail: _path([seg] * n + tail),
    _short_var,
    st.integers(MAX_PATH // 4, MAX_PATH),
    st.lists(_any_seg, max_size=4),
)


@FAST
@given(_long_path)
def test_templating_is_idempotent_for_paths_longer_than_the_cut(path: str) -> None:
    # Placeholders are longer than short ids: "/1/2/..." grows when templated.
    once = template_route(path)
    assert len(once) <= MAX_PATH
    assert template_route(once) == once


@FAST
@given(st.lists(_any_seg, max_size=12).map(_path).filter(lambda p: len(p) <= MAX_PATH))
def test_templating_keeps_the_number_of_segments(path: str) -> None:
    assert template_route(path).count("/") == path.count("/")


@FAST
@given(st.lists(_word_seg, min_size=1, max_size=8))
def test_word_paths_are_left_alone(words: list[str]) -> None:
    assert template_route(_path(words)) == _path(words)


@FAST
@given(st.lists(_word_seg, min_size=1, max_size=6), st.lists(_word_seg, min_size=1, max_size=6))
def test_two_different_word_paths_never_merge(a: list[str], b: list[str]) -> None:
    pa, pb = _path(a), _path(b)
    if pa != pb:
        assert template_route(pa) != template_route(pb)


@FAST
@given(_numeric)
def test_numeric_ids_of_any_length_are_ids(number: str) -> None:
    assert template_segment(number) == "{id}"
    assert template_route(f"/users/{number}/orders") == "/users/{id}/orders"


@FAST
@given(st.lists(st.tuples(st.booleans(), _word_seg, _numeric), min_size=1, max_size=8))
def test_ids_between_words_only_touch_the_id_positions(
    parts: list[tuple[bool, str, str]],
) -> None:
    segments = [num if is_id else word for is_id, word, num in parts]
    out = template_route(_path(segments)).split("/")[1:]
    assert out == ["{id}" if is_id else word for is_id, word, _ in parts]
