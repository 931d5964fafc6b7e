"""k shortest loop-free paths (Yen 1971) and protection pairs, pure.

Rules:
- ``k_shortest`` returns up to ``k`` distinct loop-free paths in non-decreasing metric
  order on the graph left after the prunable constraints; paths over
  ``max_delay_ms`` are skipped (the search continues past them, bounded by
  ``max_candidates``).
- ``disjoint_pair`` returns a primary and a backup sharing no link and — when
  ``srlg=True`` — no SRLG. Link-disjoint pairs come from Suurballe/Bhandari (minimum
  total metric). For SRLG-disjointness (NP-hard in general) the Suurballe pair is used
  if it happens to be SRLG-disjoint; otherwise the first of the ``tries`` Yen paths
  (best first) whose SRLG-pruned graph still has a backup path gives the pair (backup
  = shortest path left after removing every link sharing one of the primary's SRLGs).
- Failures are ``PathResult``s with ``failed_constraint`` (``disjoint`` when no pair
  exists, else the constraint that cut the graph).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from heapq import heappop, heappush

from controller.errors import ValidationError
from srv6.models import Constraints, PathResult
from srv6.paths.cspf import Fail, banned_nodes, build_result, combine, edge_filters, name_cut
from srv6.paths.spf import Path, distances, path_cost, shortest_path
from srv6.paths.topology import Topology


def yen_paths(topo: Topology, weight: list[float], src: int, dst: int,
              mask: list[bool] | None, ban: set[int], limit: int) -> Iterator[Path]:
    """Yen's algorithm, lazily: paths in non-decreasing cost, at most ``limit``."""
    first = shortest_path(topo, weight, src, dst, edge_ok=mask, banned_nodes=ban)
    if first is None:
        return
    accepted: list[Path] = [first]
    yield first
    # Exact distances to dst before any spur bans: a consistent A* heuristic.
    pot = distances(topo, weight, dst, mask, ban)
    heap: list[tuple[float, int, list[int], list[int]]] = []
    seen: set[tuple[int, ...]] = {tuple(first[1])}
    tiebreak = 0
    while len(accepted) < limit:
        last_nodes, last_edges = accepted[-1]
        for i in range(len(last_nodes) - 1):
            spur = last_nodes[i]
            root_nodes, root_edges = last_nodes[: i + 1], last_edges[:i]
            cut: set[int] = set()
            # Same root = same *edges* (not nodes): with parallel links two paths can
            # visit the same nodes over different links, and must not cut each other.
            for _, p_edges in accepted:
                if p_edges[:i] == root_edges and len(p_edges) > i:
                    cut.add(p_edges[i])
            blocked = set(ban) | set(root_nodes[:-1])
            got = shortest_path(topo, weight, spur, dst, edge_ok=mask, banned_edges=cut,
                                banned_nodes=blocked, potential=pot)
            if got is None:
                continue
            edges = root_edges + got[1]
            ident = tuple(edges)
            if ident in seen:
                continue
            seen.add(ident)
            tiebreak += 1
            heappush(heap, (path_cost(weight, edges), tiebreak, root_nodes[:-1] + got[0],
                            edges))
        if not heap:
            return
        _, _, nodes, edges = heappop(heap)
        accepted.append((nodes, edges))
        yield nodes, edges


def k_shortest(
    topo: Topology,
    headend: str,
    endpoint: str,
    k: int,
    constraints: Constraints | None = None,
    *,
    reserved: Mapping[str, float] | None = None,
    existing: Mapping[str, Sequence[str]] | None = None,
    max_candidates: int | None = None,
    with_segments: bool = True,
) -> list[PathResult]:
    """Up to ``k`` constrained paths, best first; ``[failure]`` when none exists."""
    if k < 1:
        raise ValidationError.single("k", f"k must be >= 1, not {k}")
    c = constraints or Constraints()
    src, dst = topo.node(headend, "headend"), topo.node(endpoint, "endpoint")
    ban = banned_nodes(topo, c)
    fail = Fail(headend, endpoint)
    filters = edge_filters(topo, c, reserved, existing)
    mask = combine([m for _, m in filters])
    weight = topo.weights(c.metric)
    delay_w = topo.weights("delay")
    out: list[PathResult] = []
    any_path = False
    for path in yen_paths(topo, weight, src, dst, mask, ban, max_candidates or 4 * k):
        any_path = True
        if c.max_delay_ms is not None and path_cost(delay_w, path[1]) > c.max_delay_ms:
            continue
        out.append(build_result(topo, path, c, headend, endpoint, reserved,
                           f"path {len(out) + 1} of k={k} by {c.metric} metric", None,
                           with_segments))
        if len(out) == k:
            break
    if out:
        return out
    if not any_path:
        return [name_cut(topo, src, dst, ban, filters, fail)]
    return [fail("max_delay_ms", f"none of the candidate paths is within "
                                 f"max_delay_ms {c.max_delay_ms:g}")]


def _suurballe(topo: Topology, weight: list[float], src: int, dst: int,
               mask: list[bool] | None, ban: set[int]) -> tuple[Path, Path] | None:
    """Minimum-total link-disjoint pair (Bhandari's undirected variant of Suurballe)."""
    first = shortest_path(topo, weight, src, dst, edge_ok=mask, banned_nodes=ban)
    if first is None:
        return None
    p1_nodes, p1_edges = first
    # Residual graph: P1's edges may only be traversed backwards, at cost -w.
    back = {e: (p1_nodes[i + 1], p1_nodes[i]) for i, e in enumerate(p1_edges)}
    n = topo.n
    dist = [float("inf")] * n
    prev: list[tuple[int, int] | None] = [None] * n
    dist[src] = 0.0
    # Bellman-Ford-with-queue (SPFA): few negative arcs, fast in practice.
    queue = [src]
    inq = [False] * n
    inq[src] = True
    head = 0
    while head < len(queue):
        u = queue[head]
        head += 1
        inq[u] = False
        if u in ban:
            continue
        du = dist[u]
        for v, e in topo.adj[u]:
            if mask is not None and not mask[e]:
                continue
            if e in back:
                if back[e] != (u, v):
                    continue
                w = -weight[e]
            else:
                w = weight[e]
            if du + w < dist[v] - 1e-12 and v not in ban:
                dist[v] = du + w
                prev[v] = (u, e)
                if not inq[v]:
                    inq[v] = True
                    queue.append(v)
    if dist[dst] == float("inf"):
        return None
    p2_edges: list[int] = []
    v = dst
    guard = 0
    while v != src:
        step = prev[v]
        assert step is not None
        v, e = step
        p2_edges.append(e)
        guard += 1
        if guard > n:
            return None
    used = (set(p1_edges) ^ set(p2_edges))
    out_arcs: dict[int, list[tuple[int, int]]] = {}
    for e in used:
        edge = topo.edges[e]
        # Direction: P1 arcs as walked by P1, P2 arcs as walked by P2.
        if e in back:
            u, w_ = back[e][1], back[e][0]
        else:
            u, w_ = _p2_dir(topo, p2_edges, prev, e)
        del edge
        out_arcs.setdefault(u, []).append((w_, e))
    paths: list[Path] = []
    for _ in range(2):
        nodes, edges = [src], []
        while nodes[-1] != dst:
            arcs = out_arcs.get(nodes[-1])
            if not arcs:
                return None
            nxt, e = arcs.pop()
            nodes.append(nxt)
            edges.append(e)
        paths.append((nodes, edges))
    return paths[0], paths[1]


def _p2_dir(topo: Topology, p2_edges: list[int], prev: list[tuple[int, int] | None],
            e: int) -> tuple[int, int]:
    edge = topo.edges[e]
    for node in (edge.a, edge.b):
        step = prev[node]
        if step is not None and step[1] == e:
            return step[0], node
    raise AssertionError("edge not on P2")  # pragma: no cover


def disjoint_pair(
    topo: Topology,
    headend: str,
    endpoint: str,
    constraints: Constraints | None = None,
    *,
    srlg: bool = True,
    tries: int = 8,
    reserved: Mapping[str, float] | None = None,
    with_segments: bool = True,
) -> tuple[PathResult, PathResult] | PathResult:
    """A (primary, backup) pair, or a failure result."""
    c = constraints or Constraints()
    src, dst = topo.node(headend, "headend"), topo.node(endpoint, "endpoint")
    ban = banned_nodes(topo, c)
    fail = Fail(headend, endpoint)
    filters = edge_filters(topo, c, reserved)
    mask = combine([m for _, m in filters])
    weight = topo.weights(c.metric)
    delay_w = topo.weights("delay")
    candidates: list[tuple[Path, Path]] = []
    pair = _suurballe(topo, weight, src, dst, mask, ban)
    if pair is not None and (not srlg or not _srlg_shared(topo, pair[0][1], pair[1][1])):
        candidates.append(pair)
    if srlg and not candidates:
        # Trap avoidance: the shortest path may block every SRLG-disjoint backup, so
        # try the next-best primaries too (the first try is the plain shortest path).
        for primary in yen_paths(topo, weight, src, dst, mask, ban, tries):
            risk = frozenset().union(*(topo.edges[e].srlgs for e in primary[1]))
            on = set(primary[1])
            keep = [(mask is None or mask[e.id]) and e.id not in on and not (e.srlgs & risk)
                    for e in topo.edges]
            backup = shortest_path(topo, weight, src, dst, edge_ok=keep, banned_nodes=ban)
            if backup is not None:
                candidates.append((primary, backup))
                break
    if c.max_delay_ms is not None:
        bound = c.max_delay_ms
        candidates = [p for p in candidates if path_cost(delay_w, p[0][1]) <= bound
                      and path_cost(delay_w, p[1][1]) <= bound]
    if not candidates:
        if shortest_path(topo, weight, src, dst, edge_ok=mask, banned_nodes=ban) is None:
            return name_cut(topo, src, dst, ban, filters, fail)
        kind = "SRLG" if srlg else "link"
        extra = f" within max_delay_ms {c.max_delay_ms:g}" if c.max_delay_ms else ""
        return fail("disjoint", f"no {kind}-disjoint pair of paths from {headend} to "
                                f"{endpoint}{extra}")
    best = min(candidates, key=lambda p: (path_cost(weight, p[0][1]) +
                                          path_cost(weight, p[1][1])))
    a, b = sorted(best, key=lambda p: path_cost(weight, p[1]))
    kind = "SRLG- and link-disjoint" if srlg else "link-disjoint"
    return (build_result(topo, a, c, headend, endpoint, reserved, f"primary of a {kind} pair",
                    None, with_segments),
            build_result(topo, b, c, headend, endpoint, reserved, f"backup of a {kind} pair",
                    None, with_segments))


def _srlg_shared(topo: Topology, a: list[int], b: list[int]) -> bool:
    ra = frozenset().union(*(topo.edges[e].srlgs for e in a))
    return any(topo.edges[e].srlgs & ra for e in b) or bool(set(a) & set(b))
