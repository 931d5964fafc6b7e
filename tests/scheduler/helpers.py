"""Small snapshot builders for scheduler tests."""

from __future__ import annotations

from typing import cast

from controller.models import Link, Router, SiteKind
from scheduler.models import NodeInfo, Snapshot
from scheduler.network import graph_from


def node(site: str, name: str = "n0", kind: SiteKind = SiteKind.COMPUTE_CENTRE,
         **kw: object) -> NodeInfo:
    cap = cast(dict[str, float], kw.pop("capacity", {"cpu": 16.0, "memory": 64.0}))
    return NodeInfo(name=f"{site}/{name}", site=site, site_kind=kind,
                    capacity=dict(cap), **kw)  # type: ignore[arg-type]


def snap(nodes: list[NodeInfo], links: list[Link] | None = None,
         routers: list[Router] | None = None, now: float = 0.0) -> Snapshot:
    return Snapshot(nodes={n.name: n for n in nodes},
                    graph=graph_from(links or [], routers or []), now=now)
