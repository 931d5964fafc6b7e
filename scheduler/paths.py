"""Candidate paths for joint placement: k least-delay paths per (origin, site).

Rules:
- Pure. Both engines run on the product's one graph (``srv6.paths.graph``: up links,
  sites attached through ``Router.site`` one 0 ms attachment past their router, which
  never shows in a path's links): ``srv6`` = Yen's k shortest by delay
  (``srv6.paths.ksp.yen_paths``); ``fallback`` (``prefer_srv6=False``) = the
  shortest path, then up to k-1 more found by penalising (x ``penalty``) the links of
  the paths found so far.
- A path is (links as ``Link.key`` tuple, delay ms, kinds used), shortest first.
- Links the graph refuses (duplicate keys) are a ``ValidationError`` naming the link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from controller.models import Link, Router, Site
from srv6.paths.graph import network_graph, real_links
from srv6.paths.ksp import yen_paths
from srv6.paths.spf import Path, shortest_path
from srv6.paths.topology import Topology


@dataclass(frozen=True, slots=True)
class SitePath:
    """One of the k paths from an origin to a site (not an RFC 9256 candidate path,
    ``srv6.models.CandidatePath``): ``links`` (keys, in order), ``delay_ms``, ``kinds``
    (link kinds used)."""

    links: tuple[str, ...]
    delay_ms: float
    kinds: frozenset[str]


def _site_path(topo: Topology, edges: Sequence[int]) -> SitePath:
    es = [topo.edges[e] for e in real_links(topo, edges)]
    return SitePath(tuple(e.key for e in es), sum(e.delay_ms for e in es),
                    frozenset(e.kind for e in es))


def _pairs(topo: Topology, pairs: Iterable[tuple[str, str]], k: int,
           search: Callable[[int, int], Iterable[Path]]
           ) -> dict[tuple[str, str], list[SitePath]]:
    out: dict[tuple[str, str], list[SitePath]] = {}
    for o, s in pairs:
        if o == s:
            out[(o, s)] = [SitePath((), 0.0, frozenset())]
            continue
        if o not in topo.index or s not in topo.index:
            out[(o, s)] = []
            continue
        got: list[SitePath] = []
        seen: set[tuple[str, ...]] = set()
        for _, edges in search(topo.index[o], topo.index[s]):
            p = _site_path(topo, edges)
            if p.links in seen:
                continue
            seen.add(p.links)
            got.append(p)
            if len(got) == k:
                break
        out[(o, s)] = sorted(got, key=lambda p: p.delay_ms)
    return out


def yen_k_paths(links: Sequence[Link], routers: Sequence[Router], sites: Sequence[Site],
                pairs: Iterable[tuple[str, str]], k: int
                ) -> dict[tuple[str, str], list[SitePath]]:
    """Yen's k least-delay loop-free paths (``srv6.paths.ksp.yen_paths``) on the one
    graph. A site reached through ``Router.site`` is one attachment past its router;
    two paths that differ only there are one candidate, hence ``2k`` asked."""
    topo = network_graph(links, routers, sites)
    weight = topo.weights("delay")
    extra = 2 if topo.attachments else 1
    return _pairs(topo, pairs, k, lambda a, b: yen_paths(topo, weight, a, b, None, set(),
                                                          extra * k))


def fallback_k_paths(links: Sequence[Link], routers: Sequence[Router],
                     pairs: Iterable[tuple[str, str]], k: int, penalty: float = 3.0,
                     sites: Sequence[Site] = ()) -> dict[tuple[str, str], list[SitePath]]:
    """Up to ``k`` paths on the one graph: the least-delay path, then more found by
    penalising (x ``penalty`` + 0.1) the links of the paths found so far."""
    topo = network_graph(links, routers, sites)
    base = topo.weights("delay")

    def search(a: int, b: int) -> Iterator[Path]:
        w = list(base)
        for _ in range(k * 2):
            got = shortest_path(topo, w, a, b)
            if got is None:
                return
            yield got
            for e in got[1]:
                w[e] = w[e] * penalty + 0.1

    return _pairs(topo, pairs, k, search)


def k_paths(links: Sequence[Link], routers: Sequence[Router], sites: Sequence[Site],
            pairs: Iterable[tuple[str, str]], k: int, prefer_srv6: bool = True
            ) -> tuple[dict[tuple[str, str], list[SitePath]], str]:
    """Candidate paths per pair and which engine computed them (``srv6`` / ``fallback``)."""
    pairs = list(dict.fromkeys(pairs))
    if prefer_srv6:
        return yen_k_paths(links, routers, sites, pairs, k), "srv6"
    return fallback_k_paths(links, routers, pairs, k, sites=sites), "fallback"
