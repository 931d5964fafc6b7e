"""The path engines checked against networkx, the reference graph library (issue #19,
REQ-SR-CSPF): the bidirectional Dijkstra finds a shortest path of the same cost as
networkx's Dijkstra, and the delay-bounded search returns the lowest-metric path whose
delay is within the bound, which networkx's enumeration of every simple path confirms."""

from __future__ import annotations

import random
from itertools import pairwise
from unittest.mock import patch

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import Link, LinkState, Router
from srv6.models import Constraints
from srv6.paths import Topology, compute_path, rcsp
from srv6.paths.spf import INF, bidir_shortest_path, path_cost, reachable


@st.composite
def graphs(draw: st.DrawFn, min_nodes: int, max_nodes: int, extra: int
           ) -> tuple[int, list[Link]]:
    """``(nodes, links)``: random graphs (not necessarily connected) with parallel links
    and links down."""
    n = draw(st.integers(min_nodes, max_nodes))
    pairs = draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n)),
                          min_size=n - 1, max_size=n + extra))
    return n, [Link(a=f"R{a}", b=f"R{b}", id=f"L{i}", igp_metric=draw(st.integers(1, 30)),
                 delay_ms=draw(st.floats(0.1, 10, allow_nan=False)), capacity_mbps=1000.0,
                 available_mbps=draw(st.sampled_from([50.0, 500.0, 1000.0])),
                 state=LinkState.DOWN if draw(st.integers(0, 11)) == 0 else LinkState.UP)
            for i, (a, b) in enumerate(pairs) if a != b]


def build(links: list[Link], n: int) -> tuple[Topology, nx.MultiGraph]:
    topo = Topology.build(links, [Router(name=f"R{i}", locator=f"fc00:0:{i:x}::/48")
                                  for i in range(1, n + 1)])
    g: nx.MultiGraph = nx.MultiGraph()
    g.add_nodes_from(range(topo.n))
    for e in topo.edges:
        g.add_edge(e.a, e.b, key=e.id, igp=float(e.igp), delay=e.delay_ms)
    return topo, g


@settings(max_examples=60, deadline=None)
@given(graphs(10, 60, 80), st.data())
def test_bidirectional_dijkstra_matches_networkx(graph: tuple[int, list[Link]],
                                                 data: st.DataObject) -> None:
    n, links = graph
    topo, g = build(links, n)
    src, dst = data.draw(st.integers(0, topo.n - 1)), data.draw(st.integers(0, topo.n - 1))
    weight = topo.weights("igp")
    got = bidir_shortest_path(topo, weight, src, dst)
    try:
        want = nx.dijkstra_path_length(g, src, dst, weight="igp")
    except nx.NetworkXNoPath:
        assert got is None
        return
    assert got is not None
    nodes, edges = got
    assert nodes[0] == src and nodes[-1] == dst and len(edges) == len(nodes) - 1
    for (u, v), e in zip(pairwise(nodes), edges, strict=True):
        assert {u, v} == {topo.edges[e].a, topo.edges[e].b}
    assert path_cost(weight, edges) == want


@settings(max_examples=80, deadline=None)
@given(graphs(4, 9, 8), st.floats(1.0, 25.0), st.sampled_from([0.0, 100.0]),
       st.integers(2, 9))
def test_delay_bounded_path_is_exact_against_networkx(
        graph: tuple[int, list[Link]], bound: float, bandwidth: float, far: int) -> None:
    n, links = graph
    topo, g = build(links, n)
    dst = f"R{min(far, n)}"
    res = compute_path(topo, "R1", dst, Constraints(
        max_delay_ms=bound, min_bandwidth_mbps=bandwidth, max_sid_depth=64))
    a, b = topo.index["R1"], topo.index[dst]
    usable = nx.MultiGraph()
    usable.add_nodes_from(g.nodes)
    usable.add_edges_from((u, v, k, d) for u, v, k, d in g.edges(keys=True, data=True)
                          if topo.edges[k].available_mbps >= bandwidth)
    feasible = []
    if a != b:
        for path in nx.all_simple_edge_paths(usable, a, b):
            delay = sum(topo.edges[k].delay_ms for _, _, k in path)
            if delay <= bound + 1e-9:
                feasible.append(sum(topo.edges[k].igp for _, _, k in path))
    if not feasible:
        assert not res.ok
        return
    assert res.ok, res.reason
    assert res.delay_ms <= bound + 1e-6
    assert res.igp_metric == min(feasible), (res.hops, res.reason)


@settings(max_examples=80, deadline=None)
@given(st.integers(4, 8), st.data())
def test_segment_check_matches_brute_force_uniqueness(n: int, data: st.DataObject) -> None:
    """``rcsp.unique_prefix`` (the bidirectional check on two compiled half-cost fields)
    gives, from every position of a path, the furthest node up to which the path is the
    unique IGP shortest path — as counted over every simple path (parallel links apart);
    IGP metrics of 1–3 make equal-cost paths common."""
    from srv6.paths.rcsp import unique_prefix
    from tests.srv6.topos import simple_paths

    pairs = data.draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n)),
                               min_size=n, max_size=2 * n))
    links = [Link(a=f"R{a}", b=f"R{b}", id=f"L{i}", igp_metric=data.draw(st.integers(1, 3)))
             for i, (a, b) in enumerate(pairs) if a != b]
    topo, _ = build(links, n)
    src, dst = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    paths = list(simple_paths(topo, src, dst)) if src != dst else []
    if not paths:
        return
    nodes, edges = paths[data.draw(st.integers(0, len(paths) - 1))]
    w = topo.weights("igp")
    cum = [0.0]
    for e in edges:
        cum.append(cum[-1] + w[e])

    def unique(i: int, k: int) -> bool:
        costs = [path_cost(w, es) for _, es in simple_paths(topo, nodes[i], nodes[k])]
        return min(costs) == cum[k] - cum[i] and costs.count(min(costs)) == 1

    for i in range(len(nodes) - 1):
        want = i
        while want < len(nodes) - 1 and unique(i, want + 1):
            want += 1
        assert unique_prefix(topo, nodes, cum, i) == want, (i, nodes)


class _CountingAdj(list[list[tuple[int, int]]]):
    """An adjacency that counts the nodes a search expands."""

    expanded = 0

    def __getitem__(self, i: int) -> list[tuple[int, int]]:  # type: ignore[override]
        self.expanded += 1
        return super().__getitem__(i)


def test_bidirectional_search_does_not_cover_the_graph_when_one_end_is_behind_slow_links(
) -> None:
    """Regression (issue #19 p99): the side to grow was picked by distance, so when the
    endpoint hung off the graph by one slow link the headend's side settled every node
    within that link's delay — the whole graph — before the two searches met. Growing
    the smaller frontier keeps both sides small; the path is still the shortest."""
    n, rng = 3000, random.Random(7)
    pairs = [(i, rng.randrange(i)) for i in range(1, n)]
    pairs += [(rng.randrange(n), rng.randrange(n)) for _ in range(3 * n)]
    links = [Link(a=f"R{a}", b=f"R{b}", id=f"L{i}", igp_metric=1,
                  delay_ms=rng.uniform(0.5, 1.5), capacity_mbps=1000.0)
             for i, (a, b) in enumerate(pairs) if a != b]
    links.append(Link(a="R0", b="FAR", id="slow", igp_metric=1, delay_ms=500.0,
                      capacity_mbps=1000.0))
    routers = [Router(name=f"R{i}") for i in range(n)] + [Router(name="FAR")]
    topo = Topology.build(links, routers)
    topo2 = Topology.build(links, routers)
    counting = _CountingAdj(topo.adj)
    topo.adj = counting
    src, dst = topo.index[f"R{n - 1}"], topo.index["FAR"]
    got = bidir_shortest_path(topo, topo.weights("delay"), src, dst)
    assert got is not None
    _, g = build_nx(topo2)
    want = nx.dijkstra_path_length(g, src, dst, weight="delay")
    assert abs(path_cost(topo.weights("delay"), got[1]) - want) < 1e-9
    assert counting.expanded < n // 10, counting.expanded


def build_nx(topo: Topology) -> tuple[Topology, nx.MultiGraph]:
    g: nx.MultiGraph = nx.MultiGraph()
    g.add_nodes_from(range(topo.n))
    for e in topo.edges:
        g.add_edge(e.a, e.b, key=e.id, igp=float(e.igp), delay=e.delay_ms)
    return topo, g


@settings(max_examples=120, deadline=None)
@given(graphs(4, 9, 8), st.floats(1.0, 25.0), st.data())
def test_delay_bounded_is_exact_with_partial_fields_and_escalation(
        graph: tuple[int, list[Link]], bound: float, data: st.DataObject) -> None:
    """The bounds from fields cut at a radius (``min(h, r)``), of any radii (taken
    from the cheapest path's metric, or from the incumbent's when it is not given),
    and the restart on full fields when the label search on partial ones grows too large, both
    keep the search exact: the same metric as the best of every simple path within
    the bound (networkx's enumeration), over the links that are usable (bandwidth mask)
    and avoiding banned nodes."""
    n, links = graph
    topo, g = build(links, n)
    src, dst = 0, topo.n - 1
    radii = (data.draw(st.sampled_from([0.0, 0.2, 0.6, 1.0, 3.0])),
             data.draw(st.sampled_from([0.0, 0.3, 0.8, 1.0, 3.0])))
    escalate = data.draw(st.sampled_from([1, 3, 5_000]))
    ban = set(data.draw(st.lists(st.integers(0, topo.n - 1), max_size=2))) - {src, dst}
    mask_np = np.array([e.available_mbps >= 500.0 for e in topo.edges], dtype=bool)
    mask = mask_np.tolist()
    metric, delay = topo.weights("igp"), topo.weights("delay")
    usable = nx.MultiGraph()
    usable.add_nodes_from(x for x in g.nodes if x not in ban)
    usable.add_edges_from((u, v, k, d) for u, v, k, d in g.edges(keys=True, data=True)
                          if mask[k] and u not in ban and v not in ban)
    cheap = bidir_shortest_path(topo, metric, src, dst, edge_ok=mask, banned_nodes=ban)
    if cheap is None:
        return
    with patch.object(rcsp, "ESCALATE_LABELS", escalate):
        got, best_delay = rcsp.delay_bounded(
            topo, metric, delay, src, dst, mask, mask_np, ban, bound, "igp",
            cheapest=path_cost(metric, cheap[1]) if data.draw(st.booleans()) else INF,
            radii=radii)
    feasible = [sum(topo.edges[k].igp for _, _, k in p)
                for p in nx.all_simple_edge_paths(usable, src, dst)
                if sum(topo.edges[k].delay_ms for _, _, k in p) <= bound + 1e-9]
    if not feasible:
        assert got is None and best_delay > bound
        return
    assert got is not None
    assert path_cost(delay, got[1]) <= bound + 1e-6
    assert path_cost(metric, got[1]) == min(feasible), (radii, escalate)
    assert not set(got[0]) & ban and all(mask[e] for e in got[1])


@settings(max_examples=80, deadline=None)
@given(graphs(2, 40, 50), st.data())
def test_reachable_matches_networkx(graph: tuple[int, list[Link]],
                                   data: st.DataObject) -> None:
    """The bidirectional reachability check (which names the constraint that cut a
    pair) agrees with networkx on the links a mask keeps, without banned nodes."""
    n, links = graph
    topo, g = build(links, n)
    src, dst = data.draw(st.integers(0, topo.n - 1)), data.draw(st.integers(0, topo.n - 1))
    mask = [data.draw(st.booleans()) for _ in topo.edges] if data.draw(st.booleans()) \
        else None
    ban = set(data.draw(st.lists(st.integers(0, topo.n - 1), max_size=3)))
    usable = nx.MultiGraph()
    usable.add_nodes_from(x for x in g.nodes if x not in ban)
    usable.add_edges_from((u, v, k) for u, v, k in g.edges(keys=True)
                          if (mask is None or mask[k]) and u not in ban and v not in ban)
    want = src not in ban and dst not in ban and nx.has_path(usable, src, dst)
    assert reachable(topo, src, dst, mask, ban) == want


def test_naming_the_constraint_that_cut_an_end_does_not_search_the_whole_graph() -> None:
    """Regression (issue #19 p99 at 5k nodes): when the bandwidth filter cut an
    endpoint off, naming that constraint walked the whole graph once per check (12 ms
    of a 4 ms median). The bidirectional check stops when the cut end's side runs out."""
    n, rng = 3000, random.Random(3)
    pairs = [(i, rng.randrange(i)) for i in range(1, n)]
    pairs += [(rng.randrange(n), rng.randrange(n)) for _ in range(3 * n)]
    links = [Link(a=f"R{a}", b=f"R{b}", id=f"L{i}", igp_metric=1, delay_ms=1.0,
                  capacity_mbps=10_000.0) for i, (a, b) in enumerate(pairs) if a != b]
    links.append(Link(a="R0", b="THIN", id="thin", igp_metric=1, delay_ms=1.0,
                      capacity_mbps=100.0))
    routers = [Router(name=f"R{i}", locator=f"fc00:0:{i:x}::/48") for i in range(n)]
    topo = Topology.build(links, [*routers, Router(name="THIN", locator="fc00:1::/48")])
    counting = _CountingAdj(topo.adj)
    topo.adj = counting
    res = compute_path(topo, f"R{n - 1}", "THIN", Constraints(min_bandwidth_mbps=1000.0))
    assert not res.ok and res.failed_constraint == "min_bandwidth_mbps"
    assert counting.expanded < n // 5, counting.expanded
