"""Bench: joint compute + network placement (issue #6 goals: 1,000 flows x 50 sites x
200 links — CP-SAT within 1 % of its proven bound in <= 10 s on 2 workers; greedy
within 10 % of that bound in <= 50 ms).

What is measured: a seeded random connected topology of ``sites`` sites and
``links`` links (delay 1–20 ms, 1–10 Gbit/s, mixed interconnect kinds), ``flows``
flows from random origins with CPU/memory demand, bandwidth and delay bounds, one
slice with a per-link guarantee. Candidate paths (k per origin/site) are computed
once (time reported separately). Greedy time is the solver only; CP-SAT starts from
the greedy hint. Every plan is checked against the hard constraints.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from controller.models import InterconnectKind, Link, Site, SiteKind
from scheduler.paths import k_paths
from scheduler.placement import (
    PFlow,
    PlacementProblem,
    PSite,
    build_options,
    check_plan,
    greedy,
    solve,
)


def make_problem(flows: int = 1000, sites: int = 50, links: int = 200, k: int = 3,
                 seed: int = 7, load: float = 0.6) -> tuple[PlacementProblem, float, str]:
    rng = random.Random(seed)
    names = [f"S{i}" for i in range(sites)]
    kinds = list(SiteKind)
    site_objs = [Site(name=n, kind=kinds[i % len(kinds)], region=f"r{i % 5}")
                 for i, n in enumerate(names)]
    edges: set[tuple[int, int]] = set()
    for i in range(1, sites):  # spanning tree first: connected
        edges.add((rng.randrange(i), i))
    while len(edges) < links:
        a, b = rng.sample(range(sites), 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    ics = list(InterconnectKind)
    link_objs = [Link(a=names[a], b=names[b], delay_ms=rng.uniform(1, 20),
                      capacity_mbps=rng.choice([1000, 2500, 10000]),
                      kind=ics[rng.randrange(3)]) for a, b in sorted(edges)]
    fl = []
    for i in range(flows):
        fl.append(PFlow(
            id=f"f{i}", origin=names[rng.randrange(sites)],
            demand={"cpu": float(rng.choice([1, 2, 4, 8])), "memory": float(rng.choice([2, 4,
                                                                                          16]))},
            bandwidth_mbps=float(rng.choice([5, 10, 20, 50])),
            max_delay_ms=float(rng.choice([20, 40, 80])),
            slice="gold" if i % 10 == 0 else None))
    total_cpu = sum(f.demand["cpu"] for f in fl)
    total_mem = sum(f.demand["memory"] for f in fl)
    psites = [PSite(name=s.name, kind=s.kind,
                    capacity={"cpu": total_cpu / sites / load * rng.uniform(0.6, 1.4),
                              "memory": total_mem / sites / load * rng.uniform(0.6, 1.4)},
                    price=rng.uniform(0.5, 2.0), energy_w=rng.uniform(5, 20))
              for s in site_objs]
    t0 = time.perf_counter()
    pairs = [(f.origin, s) for f in fl for s in names]
    paths, engine = k_paths(link_objs, [], site_objs, pairs, k)
    t_paths = time.perf_counter() - t0
    prob = PlacementProblem(psites, fl, paths, {ln.key: ln.available for ln in link_objs},
                            slices={"gold": 200.0})
    return prob, t_paths, engine


def run(flows: int = 1000, sites: int = 50, links: int = 200, k: int = 3,
        time_limit_s: float = 10.0, workers: int = 2, seed: int = 7,
        **_opts: Any) -> dict[str, Any]:
    prob, t_paths, engine = make_problem(int(flows), int(sites), int(links), int(k),
                                         int(seed))
    reps = 7  # the machine is shared: report min and median of the instant answer
    opt_t: list[float] = []
    gr_t: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        built = build_options(prob)
        t1 = time.perf_counter()
        _, g_obj = greedy(prob, built=built)
        opt_t.append((t1 - t0) * 1000)
        gr_t.append((time.perf_counter() - t1) * 1000)
    total = sorted(a + b for a, b in zip(opt_t, gr_t, strict=True))
    model_ms, greedy_ms = statistics.median(opt_t), statistics.median(gr_t)
    plan = solve(prob, time_limit_s=float(time_limit_s), workers=int(workers),
                 gap_limit=0.005)
    bound = plan.bound
    g = g_obj / 100.0
    greedy_gap = (g - bound) / g if g else 0.0
    errs = check_plan(prob, plan)
    return {
        "bench": "placement", "flows": flows, "sites": sites, "links": links, "k": k,
        "paths_engine": engine, "paths_s": round(t_paths, 3),
        "options_per_flow_max": prob.max_options,
        "options_ms_median": round(model_ms, 2), "greedy_ms_median": round(greedy_ms, 2),
        "greedy_total_ms_median": round(statistics.median(total), 2),
        "greedy_total_ms_min": round(total[0], 2), "greedy_objective": round(g, 2),
        "greedy_gap_to_bound": round(greedy_gap, 4),
        "cpsat_s": round(plan.solve_s, 3), "cpsat_status": plan.status,
        "objective": round(plan.objective, 2), "bound": round(bound, 2),
        "gap": round(plan.gap, 4), "unplaced": len(plan.unplaced),
        "workers": workers, "time_limit_s": time_limit_s,
        "constraint_violations": len(errs),
        "goal_cpsat": plan.gap <= 0.01 and plan.solve_s <= 10.0,
        "goal_greedy": greedy_gap <= 0.10 and statistics.median(total) <= 50.0,
    }
