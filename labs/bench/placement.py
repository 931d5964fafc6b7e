"""Bench: joint compute + network placement, 250 / 1,000 / 4,000 flows × 50 sites × 200
links (issue #19 goals: within 1 % of a bound of the FULL model — every flow × every
(site, path) option — in ≤ 10 s on 2 workers, everything included; greedy ≤ 5 %).

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


def _one(flows: int, sites: int, links: int, k: int, time_limit_s: float, workers: int,
         seed: int, gap_limit: float) -> dict[str, Any]:
    prob, t_paths, engine = make_problem(flows, sites, links, k, seed)
    reps = 5  # the machine is shared: the instant answer's median and min
    opt_t: list[float] = []
    gr_t: list[float] = []
    g_obj = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        built = build_options(prob)
        t1 = time.perf_counter()
        _, g_obj = greedy(prob, built=built)
        opt_t.append((t1 - t0) * 1000)
        gr_t.append((time.perf_counter() - t1) * 1000)
    total = sorted(a + b for a, b in zip(opt_t, gr_t, strict=True))
    t0 = time.perf_counter()
    plan = solve(prob, time_limit_s=time_limit_s, workers=workers, gap_limit=gap_limit)
    wall = time.perf_counter() - t0
    g = g_obj / 100.0
    greedy_gap = (g - plan.bound) / g if g else 0.0
    errs = check_plan(prob, plan)
    return {
        "flows": flows, "paths_engine": engine, "paths_s": round(t_paths, 3),
        "greedy_total_ms_median": round(statistics.median(total), 2),
        "greedy_total_ms_min": round(total[0], 2), "greedy_objective": round(g, 2),
        "greedy_gap_to_bound": round(greedy_gap, 4),
        "status": plan.status, "objective": round(plan.objective, 2),
        "bound_full_model": round(plan.bound, 2), "gap": round(plan.gap, 4),
        "seconds": round(wall, 2), "unplaced": len(plan.unplaced),
        "constraint_violations": len(errs),
        "met": plan.gap <= 0.01 and wall <= time_limit_s + 0.5 and not errs
        and greedy_gap <= 0.05,
    }


def run(sizes: str = "250,1000,4000", sites: int = 50, links: int = 200, k: int = 3,
        time_limit_s: float = 10.0, workers: int = 2, seed: int = 7,
        gap_limit: float = 0.005, flows: int | None = None, **_opts: Any) -> dict[str, Any]:
    """The sweep: per size the solver's status (what was proven), objective, the full
    model's bound, gap, time (budget ``time_limit_s`` for everything: options, greedy,
    LP bound, CP-SAT), greedy's gap to that bound. Goal (issue #19): gap ≤ 1 % within
    the budget and greedy ≤ 5 % at every size."""
    ns = [int(flows)] if flows else [int(x) for x in str(sizes).split(",") if x]
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    rows = [_one(n, int(sites), int(links), int(k), float(time_limit_s), int(workers),
                 int(seed), float(gap_limit)) for n in ns]
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]
    worst = max(rows, key=lambda r: r["gap"])
    return {"bench": "placement", "sites": sites, "links": links, "k": k,
            "workers": workers, "time_limit_s": time_limit_s, "sizes": rows,
            "load_before": load_before, "load_after": load_after,
            "figure": worst["gap"], "figure_name": "worst gap to the full model's bound",
            "goal": "gap <= 0.01 within time_limit_s, greedy gap <= 0.05, every size",
            "met": all(r["met"] for r in rows)}
