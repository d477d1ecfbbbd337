"""The routing tree: which routes (and so which receivers and grouping) an alert takes.

Matching follows Alertmanager: the root matches every alert; an alert descends
into the first child whose matchers match, and on into later siblings only
while the matching child has ``continue`` set. A node none of whose children
match is itself the match.

>>> from apiwatch.models.delivery.config import RouteConfig
>>> tree = build_tree(RouteConfig.model_validate({
...     "receiver": "default",
...     "routes": [
...         {"matchers": ["kind=~brute_force|probing"], "receiver": "security",
...          "continue": True},
...         {"matchers": ["severity=critical"], "receiver": "oncall", "group_by": ["route"]},
...     ]}))
>>> [(r.id, r.receiver) for r in match_routes(tree, {"kind": "probing", "severity": "critical"})]
[('0.0', 'security'), ('0.1', 'oncall')]
>>> [r.receiver for r in match_routes(tree, {"kind": "latency_spike", "severity": "info"})]
['default']
>>> oncall = match_routes(tree, {"severity": "critical", "route": "/a"})[0]
>>> group_key(oncall, {"severity": "critical", "route": "/a", "service": "x"})
'0.1:{route="/a"}'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from apiwatch.models.delivery.config import RouteConfig
from apiwatch.models.delivery.matchers import Matcher, match_all

#: ``group_by: ['...']`` groups by every label: each distinct alert is its own group.
ALL_LABELS = "..."


@dataclass(frozen=True)
class Route:
    """A resolved route: every option set, inherited ones filled in.

    ``id`` is the path of child indices from the root (``"0"``), so it is the
    same in every worker that loads the same configuration.
    """

    id: str
    receiver: str | None
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    children: tuple[Route, ...] = ()


#: What the root route uses for the options it leaves unset: Alertmanager's timings,
#: but grouped per service and environment rather than all alerts in one group.
ROOT_DEFAULTS = Route(
    id="",
    receiver=None,
    matchers=(),
    continue_=False,
    group_by=("service", "environment"),
    group_wait_s=30.0,
    group_interval_s=300.0,
    repeat_interval_s=4 * 3600.0,
)


def build_tree(cfg: RouteConfig, parent: Route = ROOT_DEFAULTS, route_id: str = "0") -> Route:
    """Resolve inheritance top-down into a tree of :class:`Route`."""
    node = Route(
        id=route_id,
        receiver=cfg.receiver if cfg.receiver is not None else parent.receiver,
        matchers=tuple(cfg.matchers),
        continue_=cfg.continue_,
        group_by=tuple(cfg.group_by) if cfg.group_by is not None else parent.group_by,
        group_wait_s=_or(cfg.group_wait_s, parent.group_wait_s),
        group_interval_s=_or(cfg.group_interval_s, parent.group_interval_s),
        repeat_interval_s=_or(cfg.repeat_interval_s, parent.repeat_interval_s),
    )
    children = tuple(
        build_tree(child, node, f"{route_id}.{i}") for i, child in enumerate(cfg.routes)
    )
    return replace(node, children=children)


def _or(own: float | None, inherited: float) -> float:
    return inherited if own is None else own


def match_routes(route: Route, labels: Mapping[str, str]) -> list[Route]:
    """The routes an alert with ``labels`` takes below (and including) ``route``."""
    matched: list[Route] = []
    for child in route.children:
        if match_all(child.matchers, labels):
            matched.extend(match_routes(child, labels))
            if not child.continue_:
                break
    return matched or [route]


def index_routes(root: Route) -> dict[str, Route]:
    """Every route by id, to find a route again from the id carried in a record."""
    found = {root.id: root}
    for child in root.children:
        found.update(index_routes(child))
    return found


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that identify the alert's group on ``route``."""
    if ALL_LABELS in route.group_by:
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(route.group_by) if name in labels}


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """A stable, readable key of the alert's group: the route id and the group labels."""
    inner = ",".join(f'{k}="{v}"' for k, v in group_labels(route, labels).items())
    return f"{route.id}:{{{inner}}}"
