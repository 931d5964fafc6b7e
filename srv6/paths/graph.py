"""The one network graph of the product: every shortest path over ``Link`` runs here
(issue #19), pure.

Rules:
- ``network_graph`` builds the ``Topology`` the scheduler, the ranking and the labs
  use: the up links (both directions; nodes named by links need not be declared) plus
  one *attachment* edge per router with a ``Router.site`` (0 ms, no loss, no jitter,
  unlimited bandwidth; see ``topology.ATTACHMENT``). That is the single treatment of a
  site reached through its router: every caller sees the same paths, and an
  attachment never appears among a path's links (``real_links``).
- Searches are the ``srv6.paths.spf`` primitives over that ``Topology`` (CSPF, k
  shortest and disjoint pairs use the same one); this module adds the views the
  scheduler needs: least-delay distances from several sources (``delays_from``) and
  the least-delay path from one origin with what accumulates along it
  (``path_views``: jitter adds, loss combines as 1 - prod(1 - p), bandwidth is the
  bottleneck, the set of link kinds used).
- A source or origin that is not in the graph reaches only itself (distance 0).
- Ties between equal-delay paths go to the first one found (settling order, then the
  node's adjacency order), so results are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

from controller.models import Link, Router, Site
from srv6.paths.spf import INF
from srv6.paths.topology import Topology


def network_graph(links: Iterable[Link], routers: Iterable[Router] = (),
                  sites: Iterable[Site] = ()) -> Topology:
    """The product's graph of ``links`` with ``Router.site`` attachments (no SIDs)."""
    return Topology.build(links, routers, sites, attach_sites=True, implicit_nodes=True,
                          sids=False)


def real_links(topo: Topology, edges: Sequence[int]) -> list[int]:
    """``edges`` without router↔site attachments (what a path's ``links`` report)."""
    att = topo.attachments
    return [e for e in edges if e not in att] if att else list(edges)


def delays_from(topo: Topology, sources: Iterable[str]) -> dict[str, float]:
    """Node name → least delay (ms) from any of ``sources`` (multi-source Dijkstra)."""
    out: dict[str, float] = {}
    heap: list[tuple[float, int]] = []
    for name in sources:
        u = topo.index.get(name)
        if u is None:
            out[name] = 0.0
        else:
            heap.append((0.0, u))
    heapify(heap)
    weight = topo.weights("delay")
    adj, names = topo.adj, topo.names
    dist: dict[int, float] = {}
    while heap:
        d, u = heappop(heap)
        if u in dist:
            continue
        dist[u] = d
        out[names[u]] = d
        for v, e in adj[u]:
            if v not in dist:
                heappush(heap, (d + weight[e], v))
    return out


@dataclass(frozen=True, slots=True)
class PathView:
    """What the least-delay path from an origin to a node looks like."""

    delay_ms: float
    jitter_ms: float
    loss_pct: float
    bandwidth_mbps: float
    #: link kinds used on the path (attachments excluded)
    kinds: frozenset[str]


def path_views(topo: Topology, origin: str) -> dict[str, PathView]:
    """Every node reachable from ``origin`` → ``PathView`` of the least-delay path."""
    src = topo.index.get(origin)
    if src is None:
        return {origin: PathView(0.0, 0.0, 0.0, INF, frozenset())}
    edges, att, names = topo.edges, topo.attachments, topo.names
    weight = topo.weights("delay")
    # (delay, seq, node, jitter, kept fraction, bottleneck, kinds): ``seq`` keeps the
    # first-found path among equal delays, as the rules say.
    heap: list[tuple[float, int, int, float, float, float, frozenset[str]]] = [
        (0.0, 0, src, 0.0, 1.0, INF, frozenset())]
    seq = 1
    out: dict[str, PathView] = {}
    done: set[int] = set()
    adj = topo.adj
    while heap:
        d, _, u, jit, keep, bw, kinds = heappop(heap)
        if u in done:
            continue
        done.add(u)
        out[names[u]] = PathView(d, jit, 100.0 * (1.0 - keep), bw, kinds)
        for v, e in adj[u]:
            if v in done:
                continue
            ed = edges[e]
            nk = kinds if e in att or ed.kind in kinds else kinds | {ed.kind}
            heappush(heap, (d + weight[e], seq, v, jit + ed.jitter_ms,
                            keep * (1 - ed.loss_pct / 100.0), min(bw, ed.available_mbps),
                            nk))
            seq += 1
    return out
