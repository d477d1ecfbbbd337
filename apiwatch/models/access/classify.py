"""Per-request facts the access detectors count: logins, failures, sensitive paths, scanners, ids.

One :class:`RequestClassifier` is built from config and asked about each
event on the hot path; each question is a memoised regex or substring test,
because real traffic repeats routes, paths and agents.

>>> from apiwatch.models.access.config import ClassifyConfig
>>> c = RequestClassifier(ClassifyConfig())
>>> c.is_login("POST", "/api/v1/login"), c.is_login("GET", "/api/v1/login")
(True, False)
>>> c.is_sensitive("/.git/config"), c.is_sensitive("/backup.zip"), c.is_sensitive("/docs/a.zip")
(True, True, False)
>>> c.is_scanner("Mozilla/5.0 (compatible; Nmap Scripting Engine)"), c.is_scanner("curl/8.5")
(True, False)
>>> object_ids("/users/42/orders/7", "/users/{id}/orders/{id}")
'42/7'
>>> object_ids("/users/me", "/users/me") is None
True
"""

from __future__ import annotations

import re
from functools import lru_cache

from apiwatch.models.access.config import ClassifyConfig


@lru_cache(maxsize=65_536)
def object_ids(path: str, route: str) -> str | None:
    """The concrete values of a route's placeholders in ``path``, joined by '/'; None if none."""
    if "{" not in route:
        return None
    p_parts = path.split("/")
    r_parts = route.split("/")
    if len(p_parts) != len(r_parts):
        return None
    ids = [p for p, r in zip(p_parts, r_parts, strict=True) if r.startswith("{")]
    return "/".join(ids) if ids else None


class RequestClassifier:
    """Answers the per-request questions of the access detectors, memoised."""

    def __init__(self, cfg: ClassifyConfig) -> None:
        self._login_route = re.compile(cfg.login_route)
        self._login_methods = frozenset(m.upper() for m in cfg.login_methods)
        self.auth_failures = frozenset(cfg.auth_failure_statuses)
        self._sensitive = re.compile(cfg.sensitive_path)
        self._scanners = tuple(a.lower() for a in cfg.scanner_agents)
        self._route_is_login = lru_cache(maxsize=16_384)(self._match_login_route)
        self.is_sensitive = lru_cache(maxsize=65_536)(self._match_sensitive)
        self.is_scanner = lru_cache(maxsize=16_384)(self._match_scanner)

    def _match_login_route(self, route: str) -> bool:
        return self._login_route.search(route) is not None

    def _match_sensitive(self, path: str) -> bool:
        return self._sensitive.search(path) is not None

    def _match_scanner(self, agent: str) -> bool:
        low = agent.lower()
        return any(s in low for s in self._scanners)

    def is_login(self, method: str, route: str) -> bool:
        return method in self._login_methods and self._route_is_login(route)
