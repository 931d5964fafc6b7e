"""Property tests for path computation, checked against brute-force oracles.

- CSPF: a returned path satisfies every constraint; "infeasible" is only reported when
  no loop-free path satisfies the constraints; without a delay bound it is optimal.
- Disjoint pairs share no link (and no SRLG when asked); the link-disjoint pair has the
  minimum total metric.
- Reservations never exceed a link's available bandwidth.
- The minimal segment list, forwarded by IGP shortest paths (unique next hop required),
  reproduces the computed path exactly.
"""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.errors import ConflictError
from controller.models import Link
from srv6.models import Constraints
from srv6.paths import Reservations, Topology, compute_path, disjoint_pair, k_shortest
from srv6.paths.spf import INF
from tests.srv6.topos import SRLGS, build, n_nodes, random_links, simple_paths

SETTINGS = settings(max_examples=60, deadline=None)


def constraints_st(n: int) -> st.SearchStrategy[Constraints]:
    return st.builds(
        Constraints,
        max_delay_ms=st.none() | st.floats(0.5, 30),
        min_bandwidth_mbps=st.sampled_from([0.0, 10.0, 80.0, 500.0]),
        exclude_nodes=st.lists(st.sampled_from([f"R{i}" for i in range(3, n + 1)] or ["R1"]),
                               max_size=1),
        exclude_srlgs=st.lists(st.sampled_from(SRLGS), max_size=1),
        max_sid_depth=st.just(64),
    )


def satisfies(topo: Topology, edges: list[int], nodes: list[int], c: Constraints) -> bool:
    es = [topo.edges[e] for e in edges]
    if any(topo.names[u] in c.exclude_nodes for u in nodes):
        return False
    if any(e.srlgs & set(c.exclude_srlgs) for e in es):
        return False
    if any(e.available_mbps < c.min_bandwidth_mbps for e in es):
        return False
    return c.max_delay_ms is None or sum(e.delay_ms for e in es) <= c.max_delay_ms + 1e-9


@SETTINGS
@given(st.data())
def test_cspf_meets_constraints_or_is_truly_infeasible(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links())
    topo = build(links)
    n = n_nodes(links)
    c = data.draw(constraints_st(n))
    dst = f"R{data.draw(st.integers(2, n))}"
    res = compute_path(topo, "R1", dst, c)
    feasible = [(nodes, edges) for nodes, edges in simple_paths(topo, 0, topo.index[dst])
                if satisfies(topo, edges, nodes, c)]
    if not res.ok:
        assert res.failed_constraint and res.reason
        assert not feasible, f"reported {res.failed_constraint} but a path exists"
        return
    edges = [topo.edge_by_key[k] for k in res.links]
    nodes = [topo.index[h] for h in res.hops]
    assert nodes[0] == 0 and topo.names[nodes[-1]] == dst
    assert len(set(nodes)) == len(nodes)
    assert satisfies(topo, edges, nodes, c)
    # Exact with or without a delay bound (issue #19): no feasible path is cheaper.
    best = min(sum(topo.edges[e].igp for e in es) for _, es in feasible)
    assert res.igp_metric == best


def igp_forward(topo: Topology, start: int, target: int) -> list[int] | None:
    """Hop-by-hop IGP forwarding; None when a node has equal-cost next hops (ECMP)."""
    w = topo.weights("igp")
    dist = [INF] * topo.n
    dist[target] = 0.0
    changed = True
    while changed:  # Bellman-Ford toward target: an oracle independent of spf.py
        changed = False
        for edge in topo.edges:
            for u, v in ((edge.a, edge.b), (edge.b, edge.a)):
                if dist[v] + w[edge.id] < dist[u]:
                    dist[u] = dist[v] + w[edge.id]
                    changed = True
    walked: list[int] = []
    u = start
    while u != target:
        nxt = [(v, e) for v, e in topo.adj[u] if dist[v] + w[e] == dist[u]]
        if len(nxt) != 1:
            return None
        u, e = nxt[0]
        walked.append(e)
    return walked


@SETTINGS
@given(st.data())
def test_segment_list_reproduces_path_under_igp_forwarding(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links(max_nodes=8))
    topo = build(links)
    n = n_nodes(links)
    c = data.draw(constraints_st(n))
    res = compute_path(topo, "R1", f"R{data.draw(st.integers(2, n))}", c)
    if not res.ok:
        return
    assert res.segment_list is not None
    sid_owner = {sid: u for u, sid in topo.node_sids.items()}
    adj_owner = {sid: key for key, sid in topo.adj_sids.items()}
    at, walked = 0, []
    for sid in res.segment_list.sids:
        if sid in adj_owner:
            node, e = adj_owner[sid]
            assert node == at, "End.X SID used away from its node"
            walked.append(e)
            at = topo.edges[e].other(node)
        else:
            step = igp_forward(topo, at, sid_owner[sid])
            assert step is not None, "segment would be ECMP-split"
            walked += step
            at = sid_owner[sid]
    assert [topo.edges[e].key for e in walked] == res.links
    # minimality: no node SID can be dropped (the stretch would stop being unique-shortest)
    assert len(res.segment_list.sids) <= len(res.links) + 1


@SETTINGS
@given(st.data())
def test_disjoint_pairs_share_no_link_or_srlg(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links())
    topo = build(links)
    n = n_nodes(links)
    dst = f"R{data.draw(st.integers(2, n))}"
    srlg = data.draw(st.booleans())
    got = disjoint_pair(topo, "R1", dst, srlg=srlg, with_segments=False)
    paths = list(simple_paths(topo, 0, topo.index[dst]))

    def disjoint(a: list[int], b: list[int]) -> bool:
        if set(a) & set(b):
            return False
        risk = set().union(*(topo.edges[e].srlgs for e in a))
        return not srlg or not any(topo.edges[e].srlgs & risk for e in b)

    if isinstance(got, tuple):
        a, b = ([topo.edge_by_key[k] for k in r.links] for r in got)
        assert disjoint(a, b)
        if not srlg:  # Suurballe is optimal for link-disjointness
            best = min(sum(topo.edges[e].igp for e in p[1] + q[1])
                       for i, p in enumerate(paths) for q in paths[i + 1:]
                       if disjoint(p[1], q[1]))
            assert got[0].igp_metric + got[1].igp_metric == best
    else:
        assert got.failed_constraint in ("disjoint", "connectivity")
        assert (got.failed_constraint == "connectivity") == (not paths)
        if not srlg:
            assert not any(disjoint(p[1], q[1]) for i, p in enumerate(paths)
                           for q in paths[i + 1:])


@SETTINGS
@given(st.data())
def test_k_shortest_matches_enumeration(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links(max_nodes=6))
    topo = build(links)
    n = n_nodes(links)
    dst = f"R{data.draw(st.integers(2, n))}"
    k = data.draw(st.integers(1, 5))
    got = k_shortest(topo, "R1", dst, k, with_segments=False)
    costs = sorted(sum(topo.edges[e].igp for e in es)
                   for _, es in simple_paths(topo, 0, topo.index[dst]))
    if not costs:
        assert len(got) == 1 and got[0].failed_constraint == "connectivity"
        return
    assert all(r.ok for r in got)
    assert [r.igp_metric for r in got] == costs[:k]
    assert len({tuple(r.links) for r in got}) == len(got)


@SETTINGS
@given(st.data())
def test_reservations_never_exceed_available(data: st.DataObject) -> None:
    links: list[Link] = data.draw(random_links())
    topo = build(links)
    book = Reservations(topo)
    keys = list(topo.edge_by_key)
    assume(keys)  # every drawn link can be down: nothing to reserve on
    for _ in range(data.draw(st.integers(1, 25))):
        owner = f"p{data.draw(st.integers(0, 4))}"
        if data.draw(st.booleans()):
            before = book.snapshot()
            chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3))
            try:
                book.reserve(owner, chosen, data.draw(st.floats(0, 600)))
            except ConflictError as exc:
                assert "Mbit/s" in str(exc)
                assert book.snapshot() == before  # all-or-nothing
        else:
            book.release(owner)
        for key, mbps in book.snapshot().items():
            assert mbps <= topo.edges[topo.edge_by_key[key]].available_mbps + 1e-6


def test_k_shortest_keeps_paths_that_differ_only_in_a_parallel_link() -> None:
    """Regression (found by the property above): Yen's root must compare links, not
    nodes — R1→R4 over two parallel links (metric 1 and 2), then R4–R3, then R3→R2 over
    two parallel links gives four paths costing 3, 3, 4, 4."""
    def lk(i: int, a: str, b: str, m: int = 1) -> Link:
        return Link(id=f"L{i}", a=a, b=b, igp_metric=m)
    topo = build([lk(1, "R2", "R3"), lk(2, "R3", "R4"), lk(3, "R4", "R1", 2),
                  lk(4, "R1", "R4"), lk(6, "R2", "R3")])
    got = k_shortest(topo, "R1", "R2", 5, with_segments=False)
    assert [r.igp_metric for r in got] == [3, 3, 4, 4]
    assert len({tuple(r.links) for r in got}) == 4
