"""Route templating: turn a concrete request path into its endpoint template.

Per-endpoint baselines only work if ``/users/1``, ``/users/2`` … share one
series. When an event carries no ``route``, the path's variable segments are
replaced by placeholders:

- ``{id}``: decimal integers (``/orders/12345``), and mixed letter-digit ids
  short enough to be keys (``/items/ab12cd``), see below;
- ``{uuid}``: RFC 4122 UUIDs in any case, with or without dashes;
- ``{hash}``: hex digests of 16 characters or more (commit ids, content hashes);
- ``{token}``: long opaque tokens (20+ characters of base64/base64url/JWT alphabet
  with at least one digit), such as session ids or signed URLs;
- ``{date}``: ISO dates (``2026-11-26``).

Words stay as they are (``/api/v2/users/me``), so the templating never merges
two real endpoints. The function is pure and memoised: real traffic repeats paths.

>>> template_route("/users/42/orders/7f3e9a1c-5b2d-4e8f-9a6b-1c2d3e4f5a6b")
'/users/{id}/orders/{uuid}'
>>> template_route("/api/v2/files/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b")
'/api/v2/files/{hash}'
>>> template_route("/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123")
'/reset/{token}'
>>> template_route("/api/v2/users/me")
'/api/v2/users/me'
>>> template_route("/")
'/'
"""

from __future__ import annotations

import re
from functools import lru_cache

_INT = re.compile(r"^-?\d+$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-.~+=%]{20,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Short mixed ids such as "ab12cd" or "SKU-1234": letters and digits both present,
# no vowel-rich word shape. Kept conservative: at least 2 digits and 1 letter.
_MIXED = re.compile(r"^(?=(?:[^0-9]*[0-9]){2})(?=.*[A-Za-z])[A-Za-z0-9_\-]{4,40}$")
# v1, v2.1, and pre-release API versions such as v1beta1 or v2alpha (Kubernetes, Google APIs).
_VERSION = re.compile(r"^v\d{1,3}(\.\d+)*((alpha|beta|rc)\d*)?$", re.IGNORECASE)

#: Longest path kept before templating; longer ones are cut (they are attacks or bugs).
MAX_PATH = 2048


def template_segment(segment: str) -> str:
    """Map one path segment to its placeholder, or return it unchanged.

    >>> [template_segment(s) for s in ["123", "v2", "me", "SKU-1234", "2026-11-26"]]
    ['{id}', 'v2', 'me', '{id}', '{date}']
    """
    if not segment or segment.startswith("{"):
        return segment
    if _INT.match(segment):
        return "{id}"
    if _VERSION.match(segment):
        return segment
    if _DATE.match(segment):
        return "{date}"
    if _UUID.match(segment):
        return "{uuid}"
    if _HEX.match(segment) and any(c.isdigit() for c in segment):
        return "{hash}"
    if len(segment) >= 20 and _TOKEN.match(segment) and any(c.isdigit() for c in segment):
        return "{token}"
    if _MIXED.match(segment):
        return "{id}"
    return segment


@lru_cache(maxsize=131_072)
def template_route(path: str) -> str:
    """Return the route template of a request path (query string already removed)."""
    path = path[:MAX_PATH]
    if path == "/" or not path:
        return "/"
    parts = path.split("/")
    route = "/".join(template_segment(p) for p in parts)
    if len(route) > MAX_PATH:
        # Placeholders are longer than short ids ("/1/2/..." grows): cut at a segment
        # boundary, so the route stays within the limit and templating it again is a no-op.
        route = route[: route.rindex("/", 0, MAX_PATH + 1)] or "/"
    return route
