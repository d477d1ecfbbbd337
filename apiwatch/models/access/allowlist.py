"""Allow-list: clients that are never flagged (health checkers, your own monitors).

Matching is by IP or CIDR block, by a case-insensitive User-Agent substring,
by user id or by credential id. An allow-listed request is not counted at all,
so it can neither trip a detector nor feed a population baseline.

>>> from apiwatch.models.access.config import AllowListConfig
>>> allow = AllowList(AllowListConfig(ips=["10.0.0.0/8", "2001:db8::1"], user_ids=["probe"]))
>>> allow.allows("10.20.30.40", None, None, None), allow.allows("11.0.0.1", None, None, None)
(True, False)
>>> allow.allows("11.0.0.1", "apiwatch-synthetics/0.1", None, None)
True
>>> allow.allows("11.0.0.1", None, "probe", None), allow.allows("2001:db8::1", None, None, None)
(True, True)
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from apiwatch.models.access.config import AllowListConfig


class AllowList:
    """Answers "is this request from a client we must never flag?"."""

    def __init__(self, cfg: AllowListConfig) -> None:
        nets = [ipaddress.ip_network(s, strict=False) for s in cfg.ips]
        self._v4 = [n for n in nets if n.version == 4]
        self._v6 = [n for n in nets if n.version == 6]
        self._agents = tuple(a.lower() for a in cfg.user_agents if a)
        self._users = frozenset(cfg.user_ids)
        self._credentials = frozenset(cfg.credential_ids)
        # Real traffic repeats IPs and agents: memoise per instance.
        self._ip_allowed = lru_cache(maxsize=65_536)(self._match_ip)
        self._agent_allowed = lru_cache(maxsize=4096)(self._match_agent)

    @property
    def empty(self) -> bool:
        return not (self._v4 or self._v6 or self._agents or self._users or self._credentials)

    def _match_ip(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        nets = self._v4 if addr.version == 4 else self._v6
        return any(addr in n for n in nets)

    def _match_agent(self, agent: str) -> bool:
        low = agent.lower()
        return any(a in low for a in self._agents)

    def allows(
        self, ip: str, user_agent: str | None, user_id: str | None, credential_id: str | None
    ) -> bool:
        """True when any of the request's identities is on the allow-list."""
        if (self._v4 or self._v6) and self._ip_allowed(ip):
            return True
        if user_agent and self._agents and self._agent_allowed(user_agent):
            return True
        if user_id is not None and user_id in self._users:
            return True
        return credential_id is not None and credential_id in self._credentials
