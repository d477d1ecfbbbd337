"""What the checks' pure logic sees of an HTTP response: plain data, no client objects.

>>> r = Response(status_code=200, headers=[("Content-Type", "application/json")],
...              text='{"ok": true}', elapsed_ms=12.0)
>>> r.header("content-type"), r.json()
('application/json', {'ok': True})
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson


class NotJson(ValueError):
    """The response body is not JSON."""


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: list[tuple[str, str]]
    text: str
    elapsed_ms: float

    def header(self, name: str) -> str | None:
        """The header's value, repeated headers joined with ", " (RFC 9110)."""
        lower = name.lower()
        values = [v for k, v in self.headers if k.lower() == lower]
        return ", ".join(values) if values else None

    @cached_property
    def _parsed(self) -> tuple[bool, Any]:
        try:
            return True, orjson.loads(self.text)
        except orjson.JSONDecodeError:
            return False, None

    def json(self) -> Any:
        ok, value = self._parsed
        if not ok:
            raise NotJson(f"response body is not JSON: {self.text[:80]!r}")
        return value
