"""Shortest-path primitives over ``Topology`` (heapq Dijkstra), pure.

Rules:
- Weights are per edge id (``Topology.weights(metric)``); an edge is usable iff
  ``edge_ok[e]`` (or ``edge_ok`` is None) and it is not in ``banned_edges``; a node in
  ``banned_nodes`` is never entered.
- Ties are broken deterministically by node index, so results are reproducible.
- ``igp_tree`` counts equal-cost shortest paths (capped at 2) so callers can tell a
  *unique* IGP shortest path from an ECMP one.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from heapq import heappop, heappush

from srv6.paths.topology import Topology

INF = float("inf")

Path = tuple[list[int], list[int]]  # (nodes, edge ids)


def shortest_path(
    topo: Topology,
    weight: Sequence[float],
    src: int,
    dst: int,
    *,
    edge_ok: Sequence[bool] | None = None,
    banned_edges: Set[int] = frozenset(),
    banned_nodes: Set[int] = frozenset(),
    potential: Sequence[float] | None = None,
) -> Path | None:
    """Cheapest ``src``→``dst`` path, or None when unreachable. ``potential`` (exact
    distances to ``dst`` on a supergraph, e.g. before bans) turns the search into A*
    with a consistent heuristic: same answer, far fewer nodes settled."""
    if src in banned_nodes or dst in banned_nodes:
        return None
    if potential is not None:
        return _astar(topo, weight, src, dst, edge_ok, banned_edges, banned_nodes, potential)
    dist: dict[int, float] = {src: 0.0}
    prev: dict[int, tuple[int, int]] = {}
    done: set[int] = set()
    heap: list[tuple[float, int]] = [(0.0, src)]
    adj = topo.adj
    pop, push, get = heappop, heappush, dist.get
    plain = not banned_edges and not banned_nodes
    while heap:
        d, u = pop(heap)
        if u in done:
            continue
        if u == dst:
            break
        done.add(u)
        for v, e in adj[u]:
            # One loop for the common case (no bans) keeps the inner loop short.
            if v in done or (edge_ok is not None and not edge_ok[e]):
                continue
            if not plain and (e in banned_edges or v in banned_nodes):
                continue
            nd = d + weight[e]
            if nd < get(v, INF):
                dist[v] = nd
                prev[v] = (u, e)
                push(heap, (nd, v))
    if dst not in dist:
        return None
    return _walk(prev, src, dst)


def _astar(topo: Topology, weight: Sequence[float], src: int, dst: int,
           edge_ok: Sequence[bool] | None, banned_edges: Set[int], banned_nodes: Set[int],
           pot: Sequence[float]) -> Path | None:
    if pot[src] == INF:
        return None
    dist: dict[int, float] = {src: 0.0}
    prev: dict[int, tuple[int, int]] = {}
    done: set[int] = set()
    heap: list[tuple[float, int]] = [(pot[src], src)]
    adj = topo.adj
    while heap:
        _, u = heappop(heap)
        if u in done:
            continue
        if u == dst:
            break
        done.add(u)
        d = dist[u]
        for v, e in adj[u]:
            if v in done or (edge_ok is not None and not edge_ok[e]):
                continue
            if e in banned_edges or v in banned_nodes:
                continue
            h = pot[v]
            if h == INF:
                continue
            nd = d + weight[e]
            if nd < dist.get(v, INF):
                dist[v] = nd
                prev[v] = (u, e)
                heappush(heap, (nd + h, v))
    if dst not in dist:
        return None
    return _walk(prev, src, dst)


def _walk(prev: dict[int, tuple[int, int]], src: int, dst: int) -> Path:
    nodes, edges = [dst], []
    while nodes[-1] != src:
        u, e = prev[nodes[-1]]
        nodes.append(u)
        edges.append(e)
    nodes.reverse()
    edges.reverse()
    return nodes, edges


def distances(topo: Topology, weight: Sequence[float], src: int,
              edge_ok: Sequence[bool] | None = None,
              banned_nodes: Set[int] = frozenset()) -> list[float]:
    """Full single-source distances (INF where unreachable); links are bidirectional,
    so these are also the distances *to* ``src``."""
    dist = [INF] * topo.n
    dist[src] = 0.0
    heap: list[tuple[float, int]] = [(0.0, src)]
    adj = topo.adj
    while heap:
        d, u = heappop(heap)
        if d > dist[u]:
            continue
        for v, e in adj[u]:
            if (edge_ok is not None and not edge_ok[e]) or v in banned_nodes:
                continue
            nd = d + weight[e]
            if nd < dist[v]:
                dist[v] = nd
                heappush(heap, (nd, v))
    return dist


def reachable(topo: Topology, src: int, dst: int, edge_ok: Sequence[bool] | None,
              banned_nodes: Set[int] = frozenset()) -> bool:
    """Reachability (used to name which constraint disconnected a pair) by a
    bidirectional breadth-first search that grows the smaller frontier a level at a
    time: it stops when the two meet or when one side runs out, so a cut end (all its
    links filtered) costs its own small component, not the rest of the graph."""
    if src in banned_nodes or dst in banned_nodes:
        return False
    if src == dst:
        return True
    adj = topo.adj
    seen = ({src}, {dst})
    fronts = ([src], [dst])
    while fronts[0] and fronts[1]:
        side = 0 if len(fronts[0]) <= len(fronts[1]) else 1
        mine, other = seen[side], seen[1 - side]
        nxt: list[int] = []
        for u in fronts[side]:
            for v, e in adj[u]:
                if v in mine or v in banned_nodes or (edge_ok is not None
                                                      and not edge_ok[e]):
                    continue
                if v in other:
                    return True
                mine.add(v)
                nxt.append(v)
        fronts = (nxt, fronts[1]) if side == 0 else (fronts[0], nxt)
    return False


def igp_tree(topo: Topology, weight: Sequence[float], src: int,
             horizon: float = INF) -> tuple[dict[int, float], dict[int, int]]:
    """Distances from ``src`` and number of equal-cost shortest paths (capped at 2) for
    every node within ``horizon``; counts are exact because weights are >= 1."""
    dist: dict[int, float] = {src: 0.0}
    count: dict[int, int] = {src: 1}
    done: set[int] = set()
    heap: list[tuple[float, int]] = [(0.0, src)]
    adj = topo.adj
    while heap:
        d, u = heappop(heap)
        if u in done:
            continue
        if d > horizon:
            break
        done.add(u)
        cu = count[u]
        for v, e in adj[u]:
            if v in done:
                continue
            nd = d + weight[e]
            old = dist.get(v, INF)
            if nd < old:
                dist[v] = nd
                count[v] = cu
                heappush(heap, (nd, v))
            elif nd == old:
                count[v] = min(2, count[v] + cu)
    return {u: dist[u] for u in done}, {u: count[u] for u in done}


def path_cost(weight: Sequence[float], edges: Sequence[int]) -> float:
    return sum(weight[e] for e in edges)


def unique_prefix(topo: Topology, weight: Sequence[float], nodes: Sequence[int],
                  cum: Sequence[float], i: int) -> int:
    """The largest ``j`` such that ``nodes[i..j]`` is the unique shortest path from
    ``nodes[i]`` to ``nodes[j]`` (``cum`` = prefix costs of the path). A Dijkstra from
    ``nodes[i]`` with equal-cost path counting that stops as soon as the answer is known
    (the next path node settles with the wrong distance or an ECMP count), so its ball
    is only as large as the stretch the path follows the IGP."""
    src = nodes[i]
    last = len(nodes) - 1
    dist: dict[int, float] = {src: 0.0}
    count: dict[int, int] = {src: 1}
    done: set[int] = set()
    heap: list[tuple[float, int]] = [(0.0, src)]
    adj = topo.adj
    j = i
    base = cum[i]
    while heap and j < last:
        d, u = heappop(heap)
        if u in done:
            continue
        done.add(u)
        while j < last and nodes[j + 1] in done:
            v = nodes[j + 1]
            if dist[v] != cum[j + 1] - base or count[v] != 1:
                return j
            j += 1
        if j == last or d > cum[j + 1] - base:
            break
        cu = count[u]
        for v, e in adj[u]:
            if v in done:
                continue
            nd = d + weight[e]
            old = dist.get(v, INF)
            if nd < old:
                dist[v] = nd
                count[v] = cu
                heappush(heap, (nd, v))
            elif nd == old:
                count[v] = 2 if count[v] + cu > 1 else 1
    return j


def bidir_shortest_path(
    topo: Topology,
    weight: Sequence[float],
    src: int,
    dst: int,
    *,
    edge_ok: Sequence[bool] | None = None,
    banned_nodes: Set[int] = frozenset(),
) -> Path | None:
    """Cheapest ``src``→``dst`` path by bidirectional Dijkstra (links are bidirectional,
    so the backward search runs on the same adjacency). Same cost as ``shortest_path``;
    on random and backbone-like graphs each side settles roughly the square root of
    what a one-sided search settles. Each step grows the side with the smaller
    frontier (heap), so an end reached only over high-weight links does not make the
    other side settle everything within that weight. Stops once the two frontiers'
    smallest keys sum to at least the best meeting found."""
    if src in banned_nodes or dst in banned_nodes:
        return None
    if src == dst:
        return [src], []
    adj = topo.adj
    dist = ({src: 0.0}, {dst: 0.0})
    prev: tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]] = ({}, {})
    done: tuple[set[int], set[int]] = (set(), set())
    heaps: tuple[list[tuple[float, int]], list[tuple[float, int]]] = ([(0.0, src)],
                                                                       [(0.0, dst)])
    best = INF
    meet: tuple[int, int, int] | None = None  # (forward-side node, edge, backward-side)
    hf, hb = heaps
    while hf and hb:
        if hf[0][0] + hb[0][0] >= best:
            break
        # Grow the smaller frontier (any alternation is exact with this stopping
        # test): balancing by distance lets one side cover the whole graph when the
        # other end is reached only over slow links (issue #19 p99).
        side = 0 if len(hf) <= len(hb) else 1
        heap, mine, other, back, seen = heaps[side], dist[side], dist[1 - side], \
            prev[side], done[side]
        d, u = heappop(heap)
        if u in seen:
            continue
        seen.add(u)
        for v, e in adj[u]:
            if (edge_ok is not None and not edge_ok[e]) or v in banned_nodes:
                continue
            nd = d + weight[e]
            if v not in seen and nd < mine.get(v, INF):
                mine[v] = nd
                back[v] = (u, e)
                heappush(heap, (nd, v))
            ov = other.get(v)
            if ov is not None and nd + ov < best:
                best = nd + ov
                meet = (u, e, v) if side == 0 else (v, e, u)
    if meet is None:
        return None
    a, e, b = meet
    nodes, edges = _walk(prev[0], src, a) if a != src else ([src], [])
    nodes.append(b)
    edges.append(e)
    x = b
    while x != dst:
        y, f = prev[1][x]
        nodes.append(y)
        edges.append(f)
        x = y
    return nodes, edges
