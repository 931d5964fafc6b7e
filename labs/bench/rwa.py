"""Bench ``rwa``: 100-node mesh, 96 channels, 500 existing lightpaths; ms per request.

Goal (issue 7): ≤ 50 ms per request (k = 3 shortest routes, OSNR check, first-fit;
every 4th request 1+1 SRLG-disjoint). The network is generated from a fixed seed.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from optical.models import Fiber, Rate
from optical.rwa import Network, Request, RwaStatus, plan, plan_batch


def mesh(n: int, seed: int) -> list[Fiber]:
    rnd = random.Random(seed)
    pos = {f"n{i}": (rnd.uniform(0, 1500), rnd.uniform(0, 1500)) for i in range(n)}
    names = list(pos)
    fibers: dict[tuple[str, str], Fiber] = {}
    for i, a in enumerate(names):  # ring for connectivity + 2 nearest neighbours
        near = sorted(names, key=lambda b: (pos[a][0] - pos[b][0]) ** 2
                      + (pos[a][1] - pos[b][1]) ** 2)[1:3]
        for b in [names[(i + 1) % n], *near]:
            k = (min(a, b), max(a, b))
            if k not in fibers:
                d = max(5.0, ((pos[a][0] - pos[b][0]) ** 2 + (pos[a][1] - pos[b][1]) ** 2)
                        ** 0.5 / 3)
                fibers[k] = Fiber(f"{k[0]}-{k[1]}", k[0], k[1], round(d, 1),
                                  srlgs=(f"duct-{len(fibers) % 40}",))
    return list(fibers.values())


def pair(rnd: random.Random, names: list[str]) -> tuple[str, str]:
    a, b = rnd.sample(names, 2)
    return a, b


def run(nodes: int = 100, existing: int = 500, requests: int = 200, seed: int = 7,
        **_: Any) -> dict[str, Any]:
    rnd = random.Random(seed)
    net = Network.build(mesh(nodes, seed))
    names = sorted({f.a for f in net.fibers.values()} | {f.b for f in net.fibers.values()})
    pre = [Request(f"x{i}", *pair(rnd, names)) for i in range(existing * 2)]
    placed = [p for p in plan_batch(net, pre) if p.status is RwaStatus.OK][:existing]
    for lp_id in [k for k in net.lightpaths if k not in {p.request.id for p in placed}]:
        net.remove(lp_id)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    for i in range(requests):
        a, b = rnd.sample(names, 2)
        r = Request(f"r{i}", a, b, rnd.choice([Rate.G100, Rate.G400]), protect=i % 4 == 0)
        t = time.perf_counter()
        p = plan(net, r)
        times.append((time.perf_counter() - t) * 1000)
        outcomes[p.status.value] = outcomes.get(p.status.value, 0) + 1
    times.sort()
    return {"bench": "rwa", "nodes": nodes, "fibers": len(net.fibers),
            "existing_lightpaths": len(net.lightpaths), "channels": 96, "requests": requests,
            "ms_mean": round(statistics.fmean(times), 2),
            "ms_p95": round(times[int(0.95 * len(times)) - 1], 2),
            "ms_max": round(times[-1], 2), "outcomes": outcomes, "goal_ms": 50,
            "goal_met": times[int(0.95 * len(times)) - 1] <= 50}
