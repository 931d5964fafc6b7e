"""The one graph module (``srv6.paths.graph``, issue #19): the scheduler's views, the
ranking's delays and the placement's candidate paths all run on it.

- Behaviour kept: ``delays_from`` and ``path_views`` give exactly what the two former
  dict-based engines (``scheduler/ranking.py`` and ``scheduler/network.py`` before the
  merge, reproduced below as oracles) gave, ties included, on random topologies with
  links down, parallel links and routers attached to sites through ``Router.site``;
  distances also match networkx.
- Regression: a site reached only through ``Router.site`` gets the same delay from the
  ranking, the placement views and both candidate-path engines.
"""

from __future__ import annotations

import heapq

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.models import (
    Link,
    LinkKind,
    LinkState,
    Router,
    Service,
    ServiceContactInstance,
    Site,
    SiteKind,
)
from scheduler.network import views_from
from scheduler.paths import fallback_k_paths, k_paths
from scheduler.ranking import rank_instances
from srv6.paths.graph import PathView, delays_from, network_graph, path_views, real_links
from srv6.paths.spf import shortest_path
from srv6.paths.topology import ATTACHMENT
from tests.srv6.topos import random_links

OldGraph = dict[str, list[tuple[str, float, float, float, float, str]]]


def former_graph(links: list[Link], routers: list[Router]) -> OldGraph:
    g: OldGraph = {}
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


def former_delays(g: OldGraph, sources: list[str]) -> dict[str, float]:
    dist: dict[str, float] = {}
    heap = [(0.0, s) for s in sources]
    heapq.heapify(heap)
    while heap:
        d, node = heapq.heappop(heap)
        if node in dist:
            continue
        dist[node] = d
        for nxt, w, *_ in g.get(node, ()):
            if nxt not in dist:
                heapq.heappush(heap, (d + w, nxt))
    return dist


def former_views(g: OldGraph, origin: str) -> dict[str, tuple[float, float, float, float, str]]:
    out: dict[str, tuple[float, float, float, float, str]] = {}
    heap: list[tuple[float, int, str, float, float, float, tuple[str, ...]]] = [
        (0.0, 0, origin, 0.0, 1.0, float("inf"), ())]
    seq = 1
    while heap:
        d, _, node, jit, keep, bw, kinds = heapq.heappop(heap)
        if node in out:
            continue
        out[node] = (d, jit, 100.0 * (1.0 - keep), bw, ",".join(sorted(set(kinds))))
        for peer, dl, jt, loss, av, kind in g.get(node, ()):
            if peer in out:
                continue
            nk = (*kinds, kind) if kind and kind not in kinds else kinds
            heapq.heappush(heap, (d + dl, seq, peer, jit + jt, keep * (1 - loss / 100.0),
                                  min(bw, av), nk))
            seq += 1
    return out


@st.composite
def attached(draw: st.DrawFn) -> tuple[list[Link], list[Router]]:
    """Random links (some down, some parallel) with jitter, loss and kinds, and
    routers of which some belong to one of two sites."""
    base = draw(random_links())
    links = [Link.model_validate({
        **ln.model_dump(), "jitter_ms": draw(st.floats(0, 2, allow_nan=False)),
        "loss_pct": draw(st.floats(0, 5, allow_nan=False)),
        "kind": draw(st.sampled_from(list(LinkKind)))}) for ln in base]
    names = sorted({x for ln in links for x in (ln.a, ln.b)})
    routers = [Router(name=n, site=draw(st.sampled_from([None, "S1", "S2"]))) for n in names]
    return links, routers


@settings(max_examples=60, deadline=None)
@given(attached(), st.data())
def test_delays_and_views_are_those_of_the_former_engines(
        case: tuple[list[Link], list[Router]], data: st.DataObject) -> None:
    links, routers = case
    topo = network_graph(links, routers)
    old = former_graph(links, routers)
    nodes = sorted(old) or ["R1"]
    sources = data.draw(st.lists(st.sampled_from([*nodes, "nowhere"]), min_size=1,
                                 max_size=3, unique=True))
    assert delays_from(topo, sources) == former_delays(old, sources)
    origin = data.draw(st.sampled_from(nodes))
    got = {n: (v.delay_ms, v.jitter_ms, v.loss_pct, v.bandwidth_mbps,
               ",".join(sorted(v.kinds))) for n, v in path_views(topo, origin).items()}
    assert got == former_views(old, origin)
    # and the distances are networkx's
    g: nx.MultiGraph = nx.MultiGraph()
    g.add_nodes_from(topo.names)
    for e in topo.edges:
        g.add_edge(topo.names[e.a], topo.names[e.b], key=e.id, w=e.delay_ms)
    want = nx.single_source_dijkstra_path_length(g, origin, weight="w")
    assert set(got) == set(want)
    for n, dist in want.items():
        assert abs(got[n][0] - dist) <= 1e-9 * max(1.0, dist)


def test_attachments_are_edges_of_the_graph_but_never_reported_links() -> None:
    links = [Link(a="R1", b="R2", delay_ms=2.0), Link(a="R2", b="R3", delay_ms=3.0,
                                                      state=LinkState.DOWN)]
    topo = network_graph(links, [Router(name="R2", site="MEC-1"),
                                 Router(name="R3", site="R3")])
    att = [topo.edges[e] for e in topo.attachments]
    assert [(topo.names[e.a], topo.names[e.b], e.kind, e.delay_ms) for e in att] == [
        ("R2", "MEC-1", ATTACHMENT, 0.0)]  # a router "attached" to itself is no edge
    found = shortest_path(topo, topo.weights("delay"), topo.index["R1"],
                          topo.index["MEC-1"])
    assert found is not None
    assert [topo.edges[e].key for e in real_links(topo, found[1])] == ["R1~R2"]
    assert path_views(topo, "elsewhere") == {
        "elsewhere": PathView(0.0, 0.0, 0.0, float("inf"), frozenset())}
    assert delays_from(topo, ["R1", "nowhere"]) == {"R1": 0.0, "nowhere": 0.0, "R2": 2.0,
                                                    "MEC-1": 2.0}  # R3: its link is down


def test_former_engines_agree_on_a_site_reached_through_router_site() -> None:
    """Regression (issue #19): the default candidate-path engine gave a flow to a site
    attached only through ``Router.site`` no path while the ranking reached it."""
    routers = [Router(name="R1"), Router(name="R2"), Router(name="R3", site="MEC-2")]
    sites = [Site(name="MEC-2", kind=SiteKind.MEC, region="r")]
    links = [Link(a="R1", b="R2", delay_ms=2), Link(a="R2", b="R3", delay_ms=3),
             Link(a="R1", b="R3", delay_ms=9)]
    service = Service(name="svc", anycast=["2001:db8::1"], instances=[
        ServiceContactInstance(site="MEC-2", address="2001:db8:2::10")])
    ranked = rank_instances(service, client_node="R1", client_region=None, sites=sites,
                            routers=routers, links=links, metrics=[])
    views = views_from(network_graph(links, routers, sites), "R1")
    yen, engine = k_paths(links, routers, sites, [("R1", "MEC-2")], 2)
    fallback = fallback_k_paths(links, routers, [("R1", "MEC-2")], 2)
    assert engine == "srv6"
    assert ranked[0].path_delay_ms == views["MEC-2"].delay_ms == 5.0
    assert [p.delay_ms for p in yen[("R1", "MEC-2")]] == [5.0, 9.0]
    assert [p.links for p in fallback[("R1", "MEC-2")]] == [
        p.links for p in yen[("R1", "MEC-2")]]
