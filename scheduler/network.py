"""Network views for placement: path delay/jitter/loss/bandwidth from an origin (GBA-6.5f-6).

Rules:
- Pure. The graph holds only up links (both directions); a router attached to a
  site is joined to it with a 0 ms, unlimited link.
- Paths are least-delay (Dijkstra); along the chosen path jitter adds, loss
  combines as 1 - prod(1 - p), bandwidth is the bottleneck ``available``.
- ``interconnect`` of a view is the worst link kind on the path (GBA-5.2 ranking
  is applied by the interconnect plug-in, which knows the site kind).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from controller.models import Link, LinkState, Router
from scheduler.models import SiteNet

Edge = tuple[str, float, float, float, float, str]
Graph = dict[str, list[Edge]]


def graph_from(links: Iterable[Link], routers: Iterable[Router] = ()) -> Graph:
    g: Graph = {}
    for ln in links:
        if ln.state is not LinkState.UP:
            continue
        e = (ln.delay_ms, ln.jitter_ms, ln.loss_pct, ln.available, ln.kind.value)
        g.setdefault(ln.a, []).append((ln.b, *e))
        g.setdefault(ln.b, []).append((ln.a, *e))
    for r in routers:
        if r.site:
            g.setdefault(r.name, []).append((r.site, 0.0, 0.0, 0.0, float("inf"), ""))
            g.setdefault(r.site, []).append((r.name, 0.0, 0.0, 0.0, float("inf"), ""))
    return g


def views_from(graph: Graph, origin: str) -> dict[str, SiteNet]:
    """Every reachable node → ``SiteNet`` along the least-delay path from ``origin``."""
    out: dict[str, SiteNet] = {}
    heap: list[tuple[float, int, str, float, float, float, tuple[str, ...]]] = [
        (0.0, 0, origin, 0.0, 1.0, float("inf"), ())]
    seq = 1
    while heap:
        d, _, node, jit, keep, bw, kinds = heapq.heappop(heap)
        if node in out:
            continue
        out[node] = SiteNet(delay_ms=d, jitter_ms=jit, loss_pct=100.0 * (1.0 - keep),
                            bandwidth_mbps=bw, interconnect=",".join(sorted(set(kinds))))
        for peer, dl, jt, loss, av, kind in graph.get(node, ()):
            if peer in out:
                continue
            nk = (*kinds, kind) if kind and kind not in kinds else kinds
            heapq.heappush(heap, (d + dl, seq, peer, jit + jt, keep * (1 - loss / 100.0),
                                  min(bw, av), nk))
            seq += 1
    return out
