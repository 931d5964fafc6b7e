"""Topology builders and brute-force oracles shared by the path tests."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import strategies as st

from controller.models import Link, LinkState, Router
from srv6.paths import Topology

SRLGS = ["d1", "d2", "d3", "d4"]
COLORS = ["gold", "red", "blue"]


def routers(n: int) -> list[Router]:
    return [Router(name=f"R{i}", locator=f"fc00:0:{i:x}::/48") for i in range(1, n + 1)]


@st.composite
def random_links(draw: st.DrawFn, min_nodes: int = 4, max_nodes: int = 7) -> list[Link]:
    """A connected (ring-based) topology with random metrics, delays, SRLGs; some
    parallel links and some links down."""
    n = draw(st.integers(min_nodes, max_nodes))
    pairs = [(i, i % n + 1) for i in range(1, n + 1)]
    extra = draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n)), max_size=n + 2))
    pairs += [(a, b) for a, b in extra if a != b]
    out = []
    for idx, (a, b) in enumerate(pairs):
        cap = draw(st.sampled_from([100.0, 1000.0, 10000.0]))
        out.append(Link(
            a=f"R{a}", b=f"R{b}", id=f"L{idx}",
            igp_metric=draw(st.integers(1, 20)),
            delay_ms=draw(st.floats(0.1, 10, allow_nan=False)),
            capacity_mbps=cap,
            available_mbps=draw(st.floats(0, cap, allow_nan=False)),
            srlgs=draw(st.lists(st.sampled_from(SRLGS), max_size=2, unique=True)),
            state=LinkState.DOWN if draw(st.integers(0, 9)) == 0 else LinkState.UP,
        ))
    return out


def n_nodes(links: list[Link]) -> int:
    return max(int(x[1:]) for link in links for x in (link.a, link.b))


def build(links: list[Link]) -> Topology:
    return Topology.build(links, routers(n_nodes(links)))


def simple_paths(topo: Topology, src: int, dst: int) -> Iterator[tuple[list[int], list[int]]]:
    """Every loop-free path (nodes, edge ids) — the oracle for small graphs."""
    stack: list[tuple[int, list[int], list[int]]] = [(src, [src], [])]
    while stack:
        u, nodes, edges = stack.pop()
        if u == dst:
            yield nodes, edges
            continue
        for v, e in topo.adj[u]:
            if v not in nodes:
                stack.append((v, [*nodes, v], [*edges, e]))
