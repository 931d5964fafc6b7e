"""Bench: constrained path computation on a large random topology (issue #4 goal:
median <= 20 ms for 1,000 nodes / 4,000 links).

What is measured: a connected random topology (fixed seed: a random spanning tree plus
random extra links; igp metric 1–100, delay 0.2–8 ms, capacity 1/10/100 Gbit/s with
10–100 % available, 0–2 SRLGs out of ``srlgs`` groups, every router with a locator)
built once; then ``queries`` random (headend, endpoint) pairs, each asked for a path
with ``max_delay_ms`` + ``min_bandwidth_mbps`` + three excluded SRLGs, timed end to end
including the minimal segment list (``delay_bound_binding`` counts the queries where the
IGP-shortest path was too slow, so the exact delay-constrained search decided).
Also timed: Yen k-shortest (k=``k``) and SRLG-disjoint pairs on ``side_queries``
pairs. Figures are wall-clock ms per query.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from controller.models import Link, Router
from srv6.models import Constraints
from srv6.paths import Topology, compute_path, disjoint_pair, k_shortest


def random_topology(nodes: int, links: int, seed: int, srlgs: int = 200
                    ) -> tuple[list[Router], list[Link]]:
    rng = random.Random(seed)
    routers = [Router(name=f"R{i}", locator=f"fc00:{i >> 16:x}:{i & 0xFFFF:x}::/48")
               for i in range(nodes)]
    pairs: list[tuple[int, int]] = [(i, rng.randrange(i)) for i in range(1, nodes)]
    while len(pairs) < links:
        a, b = rng.randrange(nodes), rng.randrange(nodes)
        if a != b:
            pairs.append((a, b))
    out = []
    for idx, (a, b) in enumerate(pairs):
        cap = rng.choice([1000.0, 10_000.0, 100_000.0])
        out.append(Link(
            a=f"R{a}", b=f"R{b}", id=f"L{idx}", igp_metric=rng.randint(1, 100),
            delay_ms=round(rng.uniform(0.2, 8.0), 3), capacity_mbps=cap,
            available_mbps=round(cap * rng.uniform(0.1, 1.0), 1),
            srlgs=[f"g{rng.randrange(srlgs)}" for _ in range(rng.randint(0, 2))]))
    return routers, out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(nodes: int = 1000, links: int = 4000, queries: int = 200, side_queries: int = 30,
        k: int = 4, seed: int = 4, max_delay_ms: float = 20.0,
        min_bandwidth_mbps: float = 2000.0, **_opts: Any) -> dict[str, Any]:
    routers, link_list = random_topology(nodes, links, seed)
    t0 = time.perf_counter()
    topo = Topology.build(link_list, routers)
    build_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(seed + 1)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    sids: list[int] = []
    delay_bound_binding = 0
    for _ in range(queries):
        a, b = rng.sample(range(nodes), 2)
        c = Constraints(max_delay_ms=max_delay_ms, min_bandwidth_mbps=min_bandwidth_mbps,
                        exclude_srlgs=[f"g{rng.randrange(200)}" for _ in range(3)],
                        max_sid_depth=16)
        t = time.perf_counter()
        res = compute_path(topo, f"R{a}", f"R{b}", c)
        times.append((time.perf_counter() - t) * 1000)
        key = "ok" if res.ok else f"infeasible:{res.failed_constraint}"
        outcomes[key] = outcomes.get(key, 0) + 1
        if res.segment_list is not None:
            sids.append(len(res.segment_list.sids))
        delay_bound_binding += "max_delay_ms" in res.reason
    ksp_ms: list[float] = []
    pair_ms: list[float] = []
    pairs_found = 0
    for _ in range(side_queries):
        a, b = rng.sample(range(nodes), 2)
        t = time.perf_counter()
        k_shortest(topo, f"R{a}", f"R{b}", k)
        ksp_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        got = disjoint_pair(topo, f"R{a}", f"R{b}", srlg=True)
        pair_ms.append((time.perf_counter() - t) * 1000)
        pairs_found += isinstance(got, tuple)
    return {
        "bench": "cspf",
        "nodes": nodes,
        "links": len(link_list),
        "queries": queries,
        "build_ms": round(build_ms, 1),
        "median_ms": round(statistics.median(times), 3),
        "p99_ms": round(_pct(times, 0.99), 3),
        "goal_median_ms": 20,
        "met": statistics.median(times) <= 20,
        "outcomes": outcomes,
        "max_delay_ms": max_delay_ms,
        "delay_bound_binding": delay_bound_binding,
        "median_sids": statistics.median(sids) if sids else None,
        "ksp_k": k,
        "ksp_median_ms": round(statistics.median(ksp_ms), 2),
        "ksp_p99_ms": round(_pct(ksp_ms, 0.99), 2),
        "disjoint_median_ms": round(statistics.median(pair_ms), 2),
        "disjoint_p99_ms": round(_pct(pair_ms, 0.99), 2),
        "disjoint_pairs_found": f"{pairs_found}/{side_queries}",
    }
