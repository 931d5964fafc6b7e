"""Candidate paths for joint placement: k least-delay paths per (origin, site).

Rules:
- Pure. Uses the SRv6 path computation (``srv6.paths.ksp.yen_paths`` over
  ``srv6.paths.topology.Topology``, Yen's k shortest by delay) when that package is
  importable; otherwise a small fallback: the shortest path, then up to k-1 more
  found by penalising (x ``penalty``) the links of the paths found so far.
- A path is (links as ``Link.key`` tuple, delay ms, worst-kind list). Only up links.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.models import Link, LinkState, Router, Site


@dataclass(frozen=True, slots=True)
class SitePath:
    """One of the k paths from an origin to a site (not an RFC 9256 candidate path,
    ``srv6.models.CandidatePath``): ``links`` (keys, in order), ``delay_ms``, ``kinds``
    (link kinds used)."""

    links: tuple[str, ...]
    delay_ms: float
    kinds: frozenset[str]


def _srv6_k_paths(links: Sequence[Link], routers: Sequence[Router], sites: Sequence[Site],
                  pairs: Iterable[tuple[str, str]], k: int
                  ) -> dict[tuple[str, str], list[SitePath]] | None:
    try:
        from srv6.paths.ksp import yen_paths
        from srv6.paths.topology import Topology
    except ImportError:
        return None
    # A site attached through ``Router.site`` is joined to its router by a 0 ms
    # attachment (as in ``network.graph_from`` and the fallback); its key never
    # appears in a path, so a flow to such a site gets its candidate paths.
    known = {r.name for r in routers} | {st.name for st in sites}
    attach = [Link.model_construct(a=r.name, b=r.site, id=f"{r.name}@{r.site}",
                                   delay_ms=0.0, igp_metric=1, srlgs=[])
              for r in routers if r.site and r.site in known and r.site != r.name]
    virtual = {ln.key for ln in attach}
    topo = Topology.build([*links, *attach], routers, sites)
    weight = topo.weights("delay")
    out: dict[tuple[str, str], list[SitePath]] = {}
    for o, s in pairs:
        if o not in topo.index or s not in topo.index:
            out[(o, s)] = []
            continue
        if o == s:
            out[(o, s)] = [SitePath((), 0.0, frozenset())]
            continue
        got = []
        seen: set[tuple[str, ...]] = set()
        for _, edges in yen_paths(topo, weight, topo.index[o], topo.index[s], None, set(),
                                  2 * k if virtual else k):
            es = [topo.edges[e] for e in edges if topo.edges[e].key not in virtual]
            keys = tuple(e.key for e in es)
            if keys in seen:
                continue
            seen.add(keys)
            got.append(SitePath(keys, sum(e.delay_ms for e in es),
                                frozenset(e.kind for e in es)))
            if len(got) == k:
                break
        out[(o, s)] = got
    return out


def _dijkstra(adj: dict[str, list[tuple[str, str, float]]], w: dict[str, float], src: str,
              dst: str) -> list[str] | None:
    dist = {src: 0.0}
    prev: dict[str, tuple[str, str]] = {}
    heap = [(0.0, src)]
    done: set[str] = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if u == dst:
            break
        for v, key, _ in adj.get(u, ()):
            nd = d + w[key]
            if nd < dist.get(v, float("inf")):
                dist[v] = nd
                prev[v] = (u, key)
                heapq.heappush(heap, (nd, v))
    if dst not in done:
        return None
    keys: list[str] = []
    node = dst
    while node != src:
        node, key = prev[node]
        keys.append(key)
    return keys[::-1]


def fallback_k_paths(links: Sequence[Link], routers: Sequence[Router],
                     pairs: Iterable[tuple[str, str]], k: int, penalty: float = 3.0
                     ) -> dict[tuple[str, str], list[SitePath]]:
    up = [ln for ln in links if ln.state is LinkState.UP]
    adj: dict[str, list[tuple[str, str, float]]] = {}
    by_key = {ln.key: ln for ln in up}
    for ln in up:
        adj.setdefault(ln.a, []).append((ln.b, ln.key, ln.delay_ms))
        adj.setdefault(ln.b, []).append((ln.a, ln.key, ln.delay_ms))
    for r in routers:
        if r.site:
            key = f"{r.name}@{r.site}"
            adj.setdefault(r.name, []).append((r.site, key, 0.0))
            adj.setdefault(r.site, []).append((r.name, key, 0.0))
    base = {key: d for lst in adj.values() for _, key, d in lst}
    out: dict[tuple[str, str], list[SitePath]] = {}
    for o, s in pairs:
        if o == s:
            out[(o, s)] = [SitePath((), 0.0, frozenset())]
            continue
        w = dict(base)
        got: list[SitePath] = []
        seen: set[tuple[str, ...]] = set()
        for _ in range(k * 2):
            keys = _dijkstra(adj, w, o, s)
            if keys is None:
                break
            real = tuple(x for x in keys if x in by_key)
            if real not in seen:
                seen.add(real)
                got.append(SitePath(real, sum(base[x] for x in keys),
                                         frozenset(by_key[x].kind.value for x in real)))
                if len(got) == k:
                    break
            for x in keys:
                w[x] = w[x] * penalty + 0.1
        out[(o, s)] = sorted(got, key=lambda p: p.delay_ms)
    return out


def k_paths(links: Sequence[Link], routers: Sequence[Router], sites: Sequence[Site],
            pairs: Iterable[tuple[str, str]], k: int, prefer_srv6: bool = True
            ) -> tuple[dict[tuple[str, str], list[SitePath]], str]:
    """Candidate paths per pair and which engine computed them (``srv6`` / ``fallback``)."""
    pairs = list(dict.fromkeys(pairs))
    if prefer_srv6:
        try:
            got = _srv6_k_paths(links, routers, sites, pairs, k)
        except Exception:  # a topology srv6 rejects still gets the fallback
            got = None
        if got is not None:
            return got, "srv6"
    return fallback_k_paths(links, routers, pairs, k), "fallback"
