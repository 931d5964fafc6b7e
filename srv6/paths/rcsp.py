"""Exact delay-constrained shortest path (pure): the lowest-metric path whose delay is
within a bound (REQ-SR-CSPF; issue #19 "exact within the bound").

Rules:
- The lowest-delay path (bidirectional Dijkstra) decides feasibility and its metric is
  the incumbent.
- Lower bounds of the rest of any path come from reverse distance fields to the
  endpoint (delay and metric, on the constrained graph), computed by a compiled
  Dijkstra (``scipy.sparse.csgraph``) over a CSR cached per ``Topology`` (a topology
  version is an immutable ``Topology``; masks only change the per-query weights,
  never the structure). A field is cut at a radius ``r`` (``RADII``: fractions of the
  metric-shortest path's metric and of the lowest delay), and a node past it gets the
  bound ``r``: ``min(h, r)`` is still a consistent lower bound, so nothing exact is
  lost, and the compiled search covers a ball of a few per cent of the graph instead
  of all of it (issue #19: at 20k nodes the two whole fields were half a query).
- Label-setting (A* on the metric, labels = (metric, delay) at a node, Pareto-dominated
  labels dropped, a label dropped when its delay plus the delay lower bound exceeds the
  bound or its metric plus the metric lower bound exceeds the incumbent): the first
  label to reach the endpoint is optimal. Weights are non-negative, so optimal paths
  are loop-free.
- Past ``ESCALATE_LABELS`` labels on cut fields (bounds too weak for this query) the
  search restarts on whole fields (delay within the bound, metric within the
  incumbent), exact as before.
- ``MAX_LABELS`` caps the work on adversarial graphs; past it the caller falls back to
  a heuristic and must say so in the reason.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import Any, cast

import numpy as np

from srv6.paths.spf import INF, Path, bidir_shortest_path, distances, path_cost

try:  # a runtime dependency; a venv made before it was added still computes (slower)
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
    from scipy.sparse.csgraph import dijkstra  # type: ignore[import-untyped]
    HAVE_SCIPY = True
except ImportError:  # pragma: no cover - scipy is in pyproject's dependencies
    HAVE_SCIPY = False
from srv6.paths.topology import Topology

MAX_LABELS = 200_000
#: Radii of the partial distance fields, as fractions of the metric-shortest path's
#: metric and of the lowest delay (measured on the 20k-node bench graph: 0.6 / 0.8
#: keep the label search at tens of labels while each field covers a few per cent
#: of the graph instead of all of it).
RADII = (0.6, 0.8)
#: Labels after which a search on partial fields restarts on full ones.
ESCALATE_LABELS = 5_000
EPS = 1e-9

Arr = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class Csr:
    """Directed CSR of the undirected topology: each unique (row, col) pair once;
    ``eid`` (sorted directed edges) -> edge id, ``group`` -> CSR entry."""

    n: int
    indptr: Arr
    indices: Arr
    eid: Arr
    rows: Arr
    cols: Arr
    starts: Arr  # first sorted directed edge of each CSR entry
    parallel: bool
    first_eid: Arr  # edge id of each CSR entry's first directed edge
    multi: Arr  # CSR entries that merge parallel links
    multi_edges: Arr  # their edge ids, entry after entry
    multi_starts: Arr  # where each of them starts in ``multi_edges``


def csr(topo: Topology) -> Csr:
    got = topo.cache.get("csr")
    if isinstance(got, Csr):
        return got
    m, n = len(topo.edges), topo.n
    a = np.fromiter((e.a for e in topo.edges), np.int64, m)
    b = np.fromiter((e.b for e in topo.edges), np.int64, m)
    ids = np.arange(m, dtype=np.int64)
    rows, cols, eid = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([ids, ids])
    order = np.lexsort((cols, rows))
    rows, cols, eid = rows[order], cols[order], eid[order]
    key = rows * n + cols
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[first], minlength=n), out=indptr[1:])
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(eid)))
    multi = np.flatnonzero(sizes > 1)
    spans = [np.arange(starts[j], starts[j] + sizes[j]) for j in multi]
    multi_entries = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
    multi_starts = np.zeros(len(multi), dtype=np.int64)
    if len(multi) > 1:
        np.cumsum(sizes[multi][:-1], out=multi_starts[1:])
    out = Csr(n, indptr, cols[first].astype(np.int32), eid, rows, cols, starts,
              bool(len(multi)), eid[starts], multi, eid[multi_entries], multi_starts)
    topo.cache["csr"] = out
    return out


def weight_array(topo: Topology, metric: str) -> Arr:
    got = topo.cache.get(f"w:{metric}")
    if not isinstance(got, np.ndarray):
        got = np.asarray(topo.weights(metric), dtype=np.float64)
        topo.cache[f"w:{metric}"] = got
    return got


def usable_edges(topo: Topology, mask: Arr | None, ban: Set[int]) -> Arr | None:
    """Per link: is it usable in this query (``mask`` and neither end banned)? None
    when every link is. Shared by the fields of one query."""
    if not ban:
        return mask
    g = csr(topo)
    bad = np.zeros(g.n, dtype=bool)
    bad[list(ban)] = True
    ends = edge_ends(topo)
    clear = ~(bad[ends[0]] | bad[ends[1]])
    return clear if mask is None else mask & clear


def edge_ends(topo: Topology) -> tuple[Arr, Arr]:
    got = topo.cache.get("ends")
    if not isinstance(got, tuple):
        m = len(topo.edges)
        got = topo.cache["ends"] = (np.fromiter((e.a for e in topo.edges), np.int64, m),
                                    np.fromiter((e.b for e in topo.edges), np.int64, m))
    return got


def merged(g: Csr, per_edge: Arr) -> Any:
    """The CSR matrix of ``per_edge`` weights (INF: unusable); an entry joining
    parallel links takes the least of them. Gathers per entry from the links (not
    per directed edge), and merges only the entries that have parallel links."""
    data = per_edge[g.first_eid]
    if g.parallel:
        data[g.multi] = np.minimum.reduceat(per_edge[g.multi_edges], g.multi_starts)
    return csr_matrix((data, g.indices, g.indptr), shape=(g.n, g.n))


def field(topo: Topology, metric: str, dst: int, ok: Arr | None, limit: float = INF
          ) -> Arr:
    """Distances from every node to ``dst`` by ``metric`` over the usable links
    ``ok`` (``usable_edges``), INF past ``limit`` (the compiled Dijkstra stops
    there, so a small ``limit`` costs a small ball, not the graph)."""
    w = weight_array(topo, metric)
    if ok is None:
        graph = topo.cache.get(f"m:{metric}")
        if graph is None:
            graph = topo.cache[f"m:{metric}"] = merged(csr(topo), w)
    else:
        graph = merged(csr(topo), np.where(ok, w, INF))
    dist: Arr = dijkstra(graph, directed=True, indices=dst,
                         limit=limit if limit == INF else limit + EPS)
    return dist


def reverse_distances(topo: Topology, weight: Arr, dst: int, mask: Arr | None,
                      ban: Set[int], limit: float = INF) -> Arr:
    """Distances from every node to ``dst`` over usable edges (INF past ``limit``)."""
    if not HAVE_SCIPY:  # pragma: no cover
        full = np.asarray(distances(topo, weight.tolist(), dst,
                                    None if mask is None else mask.tolist(), ban))
        return np.where(full > limit + EPS, INF, full)
    ok = usable_edges(topo, mask, ban)
    graph = merged(csr(topo), weight if ok is None else np.where(ok, weight, INF))
    dist: Arr = dijkstra(graph, directed=True, indices=dst,
                         limit=limit if limit == INF else limit + EPS)
    return dist


def _matrix(g: Csr, per_directed_edge: Arr) -> Any:
    data = np.minimum.reduceat(per_directed_edge, g.starts) if g.parallel \
        else per_directed_edge
    return csr_matrix((data, g.indices, g.indptr), shape=(g.n, g.n))


def row_ptr(topo: Topology) -> Arr:
    """Start of each node's directed edges in ``Csr.rows/cols/eid`` (parallel links
    kept, unlike the merged matrix)."""
    got = topo.cache.get("rowptr")
    if not isinstance(got, np.ndarray):
        g = csr(topo)
        got = np.zeros(g.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(g.rows, minlength=g.n), out=got[1:])
        topo.cache["rowptr"] = got
    return got


def igp_matrix(topo: Topology) -> Any:
    graph = topo.cache.get("m:igp")
    if graph is None:
        graph = topo.cache["m:igp"] = merged(csr(topo), weight_array(topo, "igp"))
    return graph


def unique_prefix(topo: Topology, nodes: Sequence[int], cum: Sequence[float], i: int
                  ) -> int:
    """``spf.unique_prefix`` on IGP weights: the largest ``j`` such that ``nodes[i..j]``
    is the unique IGP shortest path between its ends, each candidate ``j`` checked in
    turn by ``_unique`` (the work grows quickly with the stretch, so the first failure
    bounds it)."""
    j = i
    while j < len(nodes) - 1 and _unique(topo, nodes, cum, i, j + 1):
        j += 1
    return j


def _unique(topo: Topology, nodes: Sequence[int], cum: Sequence[float], i: int, k: int
            ) -> bool:
    """Is ``nodes[i..k]`` (cost ``L``) the unique IGP shortest path between its ends?

    A bidirectional check from two compiled distance fields, ``ds`` from
    ``s = nodes[i]`` within ``a = L/2`` and ``dt`` from ``t = nodes[k]`` within
    ``L - a`` (two balls of half the radius instead of one of the whole: on
    backbone-like graphs, where a ball grows exponentially with its radius, hundreds
    of nodes instead of the whole graph). A path of cost <= ``L`` either ends inside
    the first ball (then it is shorter than ``L``) or leaves it over exactly one
    directed link (u, v) with ``v`` inside the second; so ``nodes[i..k]`` is the
    unique shortest path iff ``t`` is outside the first ball, the least
    ``ds[u] + w + dt[v]`` over the links leaving the first ball is ``L`` and only the
    path's own link attains it, and the path's nodes each have exactly one tight link
    towards ``s`` (first ball) or ``t`` (second ball), parallel links included."""
    s, t = nodes[i], nodes[k]
    base = cum[i]
    length = cum[k] - base
    a = length / 2
    tol = EPS * max(1.0, length)
    graph = igp_matrix(topo)
    ds: Arr = dijkstra(graph, directed=True, indices=s, limit=a + tol)
    if ds[t] != INF:
        return False  # a path of cost <= L/2 < L
    dt: Arr = dijkstra(graph, directed=True, indices=t, limit=length - a + tol)
    w = topo.weights("igp")
    adj = topo.adj
    for x in range(i + 1, k):
        v = nodes[x]
        off = cum[x] - base
        near, want = (ds, off) if off <= a + tol else (dt, length - off)
        if abs(float(near[v]) - want) > tol:
            return False
        tight = 0
        for u, e in adj[v]:
            if abs(float(near[u]) + w[e] - want) <= tol:
                tight += 1
        if tight != 1:
            return False
    # Links leaving the first ball, vectorised over the CSR (parallel links apart).
    g = csr(topo)
    ptr = row_ptr(topo)
    inside = np.flatnonzero(ds != INF)
    starts, ends = ptr[inside], ptr[inside + 1]
    sizes = ends - starts
    idx = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
    v_all = g.cols[idx]
    keep = (ds[v_all] == INF) & (dt[v_all] != INF)
    u_all, v_all, e_all = g.rows[idx][keep], v_all[keep], g.eid[idx][keep]
    total = ds[u_all] + weight_array(topo, "igp")[e_all] + dt[v_all]
    if total.size == 0:  # pragma: no cover - the path's own link leaves the ball
        return False
    best = float(total.min())
    return abs(best - length) <= tol and int(np.count_nonzero(total <= best + tol)) == 1


def delay_bounded(topo: Topology, metric: Sequence[float], delay: Sequence[float],
                  src: int, dst: int, mask: Sequence[bool] | None, mask_np: Arr | None,
                  ban: Set[int], bound: float, metric_name: str, cheapest: float = INF,
                  radii: tuple[float, float] | None = None
                  ) -> tuple[Path | None, float]:
    """``(path, lowest delay)``: the exact lowest-metric path within ``bound`` (None
    when even the lowest-delay path is slower, then the second item is its delay);
    raises ``LabelLimit`` past ``MAX_LABELS``.

    ``cheapest`` is the metric of the metric-shortest path on the same graph (what
    the caller found first; unknown: the lowest-delay path's metric stands in). The
    lower bounds come from fields of ``radii`` (default ``RADII``) times ``cheapest``
    (metric) and the lowest delay (delay); past ``ESCALATE_LABELS`` labels the search
    restarts on full fields."""
    # The lowest-delay path by bidirectional search decides feasibility without a
    # distance field over the whole graph, and its metric is the incumbent.
    fast = bidir_shortest_path(topo, delay, src, dst, edge_ok=mask, banned_nodes=ban)
    if fast is None:  # pragma: no cover - the caller found a path on the same graph
        return None, INF
    best_delay = path_cost(delay, fast[1])
    if best_delay > bound + EPS:
        return None, best_delay
    incumbent = path_cost(metric, fast[1])
    if not HAVE_SCIPY:  # pragma: no cover
        hd = reverse_distances(topo, weight_array(topo, "delay"), dst, mask_np, ban, bound)
        hc = reverse_distances(topo, weight_array(topo, metric_name), dst, mask_np, ban,
                               incumbent)
        return _label_setting(topo, metric, delay, src, dst, mask, ban, bound, fast,
                              best_delay, incumbent, hd, hc, MAX_LABELS)
    ok = usable_edges(topo, mask_np, ban)
    fc, fd = RADII if radii is None else radii
    rc = fc * min(cheapest, incumbent) if fc < INF else INF
    rd = fd * best_delay if fd < INF else INF
    if rc < incumbent or rd < bound:
        hd = _capped(field(topo, "delay", dst, ok, rd), rd)
        hc = _capped(field(topo, metric_name, dst, ok, rc), rc)
        try:
            return _label_setting(topo, metric, delay, src, dst, mask, ban, bound, fast,
                                  best_delay, incumbent, hd, hc, ESCALATE_LABELS)
        except LabelLimit:
            pass  # weak bounds on this query: the exact fields below
    hd = field(topo, "delay", dst, ok, bound)
    hc = field(topo, metric_name, dst, ok, incumbent)
    return _label_setting(topo, metric, delay, src, dst, mask, ban, bound, fast,
                          best_delay, incumbent, hd, hc, MAX_LABELS)


def _capped(dist: Arr, radius: float) -> Arr:
    """A field computed within ``radius`` as a lower bound everywhere: nodes past it
    (INF) are at least ``radius`` away. ``min(h, r)`` of a consistent ``h`` is
    consistent, so A* on it stays exact."""
    return np.minimum(dist, radius)


def _label_setting(topo: Topology, metric: Sequence[float], delay: Sequence[float],
                   src: int, dst: int, mask: Sequence[bool] | None, ban: Set[int],
                   bound: float, fast: Path, best_delay: float, incumbent: float,
                   hd: Arr, hc: Arr, max_labels: int) -> tuple[Path | None, float]:
    # Read in place (a memoryview of float64 gives Python floats): the search reads
    # tens of entries, and a list of every node's bound cost ~0.2 ms per field at 20k.
    hdl = cast("Sequence[float]", np.ascontiguousarray(hd, dtype=np.float64).data)
    hcl = cast("Sequence[float]", np.ascontiguousarray(hc, dtype=np.float64).data)
    adj = topo.adj
    # label i: (node, metric, delay, parent label, edge)
    lab_node = [src]
    lab_cost = [0.0]
    lab_delay = [0.0]
    lab_parent = [-1]
    lab_edge = [-1]
    alive = [True]
    at: dict[int, list[int]] = {src: [0]}
    heap: list[tuple[float, float, int]] = [(hcl[src], 0.0, 0)]
    while heap:
        _, _, i = heappop(heap)
        if not alive[i]:
            continue
        u = lab_node[i]
        if u == dst:
            return _labels_path(i, lab_node, lab_parent, lab_edge), best_delay
        cu, du = lab_cost[i], lab_delay[i]
        for v, e in adj[u]:
            if (mask is not None and not mask[e]) or v in ban:
                continue
            nd = du + delay[e]
            if nd + hdl[v] > bound + EPS:
                continue
            nc = cu + metric[e]
            if nc + hcl[v] > incumbent + EPS:
                continue
            others = at.get(v)
            if others is not None:
                if any(lab_cost[j] <= nc and lab_delay[j] <= nd for j in others):
                    continue
                keep = []
                for j in others:
                    if nc <= lab_cost[j] and nd <= lab_delay[j]:
                        alive[j] = False
                    else:
                        keep.append(j)
                others[:] = keep
            else:
                others = at[v] = []
            k = len(lab_node)
            if k >= max_labels:
                raise LabelLimit(k)
            lab_node.append(v)
            lab_cost.append(nc)
            lab_delay.append(nd)
            lab_parent.append(i)
            lab_edge.append(e)
            alive.append(True)
            others.append(k)
            heappush(heap, (nc + hcl[v], nd, k))
    return fast, best_delay  # pragma: no cover - hd[src] <= bound means a path exists


class LabelLimit(Exception):
    """The exact search exceeded ``MAX_LABELS`` labels."""


def _labels_path(i: int, node: list[int], parent: list[int], edge: list[int]) -> Path:
    nodes, edges = [node[i]], []
    while parent[i] >= 0:
        edges.append(edge[i])
        i = parent[i]
        nodes.append(node[i])
    nodes.reverse()
    edges.reverse()
    return nodes, edges
