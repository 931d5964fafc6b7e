"""Network views for placement: path delay/jitter/loss/bandwidth from an origin (GBA-6.5f-6).

Rules:
- Pure. The graph is the product's one graph (``srv6.paths.graph.network_graph``):
  up links both ways, a router attached to its site by a 0 ms, unlimited attachment.
- Paths are least-delay (``srv6.paths.graph.path_views``); along the chosen path
  jitter adds, loss combines as 1 - prod(1 - p), bandwidth is the bottleneck
  ``available``.
- ``interconnect`` of a view is the set of link kinds on the path, sorted and
  comma-joined (GBA-5.2 ranking is applied by the interconnect plug-in, which knows
  the site kind).
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.models import Link, Router
from scheduler.models import SiteNet
from srv6.paths.graph import network_graph, path_views
from srv6.paths.topology import Topology

Graph = Topology


def graph_from(links: Iterable[Link], routers: Iterable[Router] = ()) -> Topology:
    return network_graph(links, routers)


def views_from(graph: Topology, origin: str) -> dict[str, SiteNet]:
    """Every reachable node → ``SiteNet`` along the least-delay path from ``origin``."""
    return {name: SiteNet(delay_ms=v.delay_ms, jitter_ms=v.jitter_ms, loss_pct=v.loss_pct,
                          bandwidth_mbps=v.bandwidth_mbps,
                          interconnect=",".join(sorted(v.kinds)))
            for name, v in path_views(graph, origin).items()}
